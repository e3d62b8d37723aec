//! The CLI's error classes and their exit codes: 2 when the user's input was at fault (a bad
//! flag, config key, file or run folder), 1 for anything else.

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
    });
    if bad_input { 2 } else { 1 }
}
