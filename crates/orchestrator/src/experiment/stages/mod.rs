//! The work of each stage on one unit: train a training unit ([`sweep`]), compute one
//! network's spectra ([`spectra`]), fit and evaluate AeLLE ([`aelle`]), render the report
//! ([`report`]), apply another run's pre-trained AeLLE ([`transfer`]). Scheduling, resumption and sharding are the caller's (`pipeline`,
//! `commands`); what is complete is decided by `status`.

pub mod aelle;
pub mod report;
pub mod spectra;
pub mod sweep;
pub mod transfer;
