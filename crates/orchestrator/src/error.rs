//! The CLI's error classes and their exit codes: 2 when the user's input was at fault (a bad
//! flag, config key, file or run folder: a usage error, a config or engine error, a corrupt
//! checkpoint or metrics file, a size beyond this machine's memory), 1 for anything else.

/// An error in what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Exit code of an error: 2 when the user's input was at fault anywhere in its chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.is::<UsageError>()
            || e.is::<le_engine::LeError>()
            || e.is::<crate::experiment::config::ConfigError>()
            || e.is::<aelle_support::mem::TooLarge>()
            || matches!(
                e.downcast_ref::<rnn_models::ModelError>(),
                Some(
                    rnn_models::ModelError::Metrics { .. }
                        | rnn_models::ModelError::Safetensors { .. }
                        | rnn_models::ModelError::Checkpoint { .. }
                        | rnn_models::ModelError::InvalidConfig(_)
                )
            )
            || matches!(
                e.downcast_ref::<aelle::AelleError>(),
                Some(aelle::AelleError::InvalidConfig { .. } | aelle::AelleError::TooLarge(_))
            )
    });
    if bad_input { 2 } else { 1 }
}
