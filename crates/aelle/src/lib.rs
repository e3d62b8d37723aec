//! aelle (work in progress)
