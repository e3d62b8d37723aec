//! The experiment's task (`task.kind`, `task.data`): row-wise sequential MNIST on the embedded
//! 10k split or full MNIST, or the character-level language model on the committed Moby-Dick
//! excerpt or the full text; optionally restricted to a seeded subset of each split
//! (`task.train_examples`, `task.test_examples`).

use datasets::{CharLmTask, PixelOrder, SequentialImageTask, Subset, Task};

use super::config::{ExperimentConfig, TaskData, TaskKind};

/// A task the workers share.
pub type SharedTask = Box<dyn Task + Send + Sync>;

/// The configured task. Full data asked for (`"mnist"`, `"moby-dick"`) but not fetched is the
/// user's to fix: a usage error (exit 2) naming the folder and the fetch script.
pub fn build_task(config: &ExperimentConfig) -> anyhow::Result<SharedTask> {
    let (n_train, n_test, seed) =
        (config.task.train_examples, config.task.test_examples, config.seed);
    let data = config.task.resolved_data();
    Ok(match config.task.kind {
        TaskKind::SmnistRow => {
            let split = match data {
                TaskData::Mnist => {
                    let family = datasets::MnistFamily::Mnist;
                    family
                        .load_dir(&family.default_dir())
                        .map_err(|e| crate::error::usage(e.to_string()))?
                }
                _ => datasets::mnist_10k_split()?,
            };
            let norm = config.task.normalization;
            let inner = SequentialImageTask::new(split, PixelOrder::RowWise, norm)?;
            Box::new(Subset::seeded(inner, n_train, n_test, seed))
        }
        TaskKind::CharLm => {
            let inner = match data {
                TaskData::MobyDick => {
                    CharLmTask::moby_dick_from_dir(&CharLmTask::moby_dick_default_dir())
                        .map_err(|e| crate::error::usage(e.to_string()))?
                }
                _ => CharLmTask::moby_dick_excerpt()?,
            };
            Box::new(Subset::seeded(inner, n_train, n_test, seed))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{CHAR_LM_VOCABULARY, Preset};
    use datasets::{OutputKind, Split};

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

    #[test]
    fn char_lm_serves_the_excerpt_with_the_shapes_and_sizes_the_config_states() {
        let c = Preset::CharLm.config();
        let task = build_task(&c).unwrap();
        // The bounds the config validates against are the task's own counts.
        assert_eq!((task.num_train(), task.num_test()), c.task.sizes());
        assert_eq!((task.num_train(), task.num_test()), (71, 7));
        let (t, i, _) = c.task.kind.shape();
        assert_eq!((task.seq_len(), task.input_size()), (t, i));
        let vocab = datasets::CharVocabulary::moby_dick().unwrap();
        assert_eq!(vocab.len(), CHAR_LM_VOCABULARY);
        assert_eq!(task.output_kind(), OutputKind::ClassPerStep { num_classes: vocab.len() });
        let d = task.driving_sequences(c.spectra.driving_sequences, 0).unwrap();
        assert_eq!(d.shape(), [c.spectra.driving_sequences, 100, 83]);
        // One-hot driving inputs: every step of every sequence is one character.
        for step in d.inputs.chunks(83) {
            assert_eq!(step.iter().filter(|&&x| x == 1.0).count(), 1);
            assert_eq!(step.iter().sum::<f32>(), 1.0);
        }
    }
}
