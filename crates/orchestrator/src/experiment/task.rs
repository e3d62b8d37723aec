//! The experiment's task: row-wise sequential MNIST on the embedded 10k split or full MNIST
//! (`task.data`), optionally
//! restricted to a seeded subset of each split (`task.train_examples`, `task.test_examples`).

use datasets::{PixelOrder, SequentialImageTask, Subset};

use super::config::{ExperimentConfig, TaskData, TaskKind};

/// The configured task.
pub fn build_task(config: &ExperimentConfig) -> anyhow::Result<Subset<SequentialImageTask>> {
    let inner = match config.task.kind {
        TaskKind::SmnistRow => {
            let split = match config.task.data.resolved() {
                TaskData::Mnist => {
                    let family = datasets::MnistFamily::Mnist;
                    // Missing or unreadable files are the user's to fix: exit 2, named.
                    family
                        .load_dir(&family.default_dir())
                        .map_err(|e| crate::error::usage(e.to_string()))?
                }
                _ => datasets::mnist_10k_split()?,
            };
            let norm = config.task.normalization;
            SequentialImageTask::new(split, PixelOrder::RowWise, norm)?
        }
    };
    Ok(Subset::seeded(inner, config.task.train_examples, config.task.test_examples, config.seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::{Split, Task};

    #[test]
    fn subset_serves_the_chosen_examples_only() {
        let mut c = ExperimentConfig::default();
        c.task.train_examples = 100;
        c.task.test_examples = 50;
        let task = build_task(&c).unwrap();
        assert_eq!((task.num_train(), task.num_test()), (100, 50));
        let b = task.batch(Split::Train, &[0, 99]).unwrap();
        assert_eq!(b.input_shape(), [2, 28, 28]);
        assert!(task.batch(Split::Test, &[50]).is_err());
        let d = task.driving_sequences(15, 0).unwrap();
        assert_eq!(d.shape(), [15, 28, 28]);
    }
}
