//! Tasks: shapes, values, seeded determinism, driving sequences (safetensors), candle tensors.

use std::collections::HashSet;
use std::path::Path;

use candle_core::{DType, Device};
use datasets::char_lm::MOBY_DICK_EXCERPT;
use datasets::{
    AddingProblemConfig, AddingProblemTask, Batch, CharLmTask, CopyMemoryConfig, CopyMemoryTask,
    DatasetError, DrivingSequences, OutputKind, PixelOrder, SequentialImageTask, Split,
    SumOfSinesConfig, SumOfSinesTask, Targets, Task,
};

/// Values compared here are produced by the same f32 operations, so they must be identical;
/// this tolerance is only for the sum-of-sines recomputation in f64.
const SINE_F32_TOLERANCE: f32 = 1e-5;

fn row_task() -> SequentialImageTask {
    SequentialImageTask::mnist_10k(PixelOrder::RowWise).unwrap()
}

fn check_shapes(task: &dyn TaskShape, batch: &Batch, b: usize) {
    assert_eq!(batch.input_shape(), [b, task.t(), task.i()]);
    assert_eq!(batch.inputs.len(), b * task.t() * task.i());
    let target_len = match &batch.targets {
        Targets::ClassPerSequence(v) | Targets::ClassPerStep(v) => v.len(),
        Targets::ValuePerSequence(v) | Targets::ValuePerStep(v) => v.len(),
    };
    assert_eq!(target_len, batch.target_shape().iter().product::<usize>());
    assert!(batch.inputs.iter().all(|x| x.is_finite()));
}

trait TaskShape {
    fn t(&self) -> usize;
    fn i(&self) -> usize;
}
impl<T: Task> TaskShape for T {
    fn t(&self) -> usize {
        self.seq_len()
    }
    fn i(&self) -> usize {
        self.input_size()
    }
}

// ---------------------------------------------------------------- sequential MNIST

#[test]
fn sequential_mnist_shapes_and_values() {
    let row = row_task();
    assert_eq!(
        (row.seq_len(), row.input_size(), row.num_train(), row.num_test()),
        (28, 28, 8000, 2000)
    );
    assert_eq!(row.output_kind(), OutputKind::ClassPerSequence { num_classes: 10 });
    assert_eq!(row.num_classes(), Some(10));
    let batch = row.batch(Split::Train, &[0, 4321, 7999]).unwrap();
    check_shapes(&row, &batch, 3);
    let image = row.data().train.image(4321);
    for (k, &pixel) in image.iter().enumerate() {
        assert_eq!(batch.inputs[784 + k], f32::from(pixel) / 255.0);
    }
    let Targets::ClassPerSequence(labels) = &batch.targets else { panic!("class targets") };
    assert_eq!(labels[1], u32::from(row.data().train.labels[4321]));

    let pixel = SequentialImageTask::mnist_10k(PixelOrder::PixelWise).unwrap();
    assert_eq!((pixel.seq_len(), pixel.input_size()), (784, 1));
    let pb = pixel.batch(Split::Train, &[0, 4321, 7999]).unwrap();
    check_shapes(&pixel, &pb, 3);
    assert_eq!(pb.inputs, batch.inputs, "pixel-wise is row-wise flattened in raster order");
    assert_eq!(pb.targets, batch.targets);
}

#[test]
fn permuted_mnist_uses_one_seeded_permutation() {
    let a = SequentialImageTask::mnist_10k(PixelOrder::PermutedPixelWise { seed: 7 }).unwrap();
    let a2 = SequentialImageTask::mnist_10k(PixelOrder::PermutedPixelWise { seed: 7 }).unwrap();
    let b = SequentialImageTask::mnist_10k(PixelOrder::PermutedPixelWise { seed: 8 }).unwrap();
    assert_eq!(a.permutation(), a2.permutation());
    assert_ne!(a.permutation(), b.permutation());
    let mut sorted = a.permutation().to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..784).collect::<Vec<_>>());
    assert_ne!(a.permutation(), (0..784).collect::<Vec<_>>().as_slice());

    let batch = a.batch(Split::Test, &[5, 6]).unwrap();
    check_shapes(&a, &batch, 2);
    for (b, &idx) in [5usize, 6].iter().enumerate() {
        let image = a.data().test.image(idx);
        for t in 0..784 {
            assert_eq!(batch.inputs[b * 784 + t], f32::from(image[a.permutation()[t]]) / 255.0);
        }
    }
    assert_eq!(a.name(), "mnist-10k-permuted-pixel-seed7");
}

#[test]
fn out_of_range_index_is_an_error() {
    let row = row_task();
    let err = row.batch(Split::Test, &[0, 2000]).unwrap_err();
    assert!(
        matches!(err, DatasetError::IndexOutOfRange { index: 2000, len: 2000, split: "test", .. }),
        "{err:?}"
    );
    let err = row.epoch_batches(Split::Train, 0, 1, 0, false).unwrap_err();
    assert!(matches!(err, DatasetError::InvalidConfig { .. }), "{err:?}");
}

// ---------------------------------------------------------------- determinism

fn epoch(task: &impl Task, seed: u64, e: u64) -> Vec<Batch> {
    task.epoch_batches(Split::Train, 1000, seed, e, false).unwrap().map(Result::unwrap).collect()
}

#[test]
fn same_seed_same_batches_different_seed_different_batches() {
    let task = row_task();
    let a = epoch(&task, 42, 0);
    assert_eq!(a.len(), 8);
    assert_eq!(a, epoch(&task, 42, 0));
    let other_seed = epoch(&task, 43, 0);
    let other_epoch = epoch(&task, 42, 1);
    assert_ne!(a[0].example_indices, other_seed[0].example_indices);
    assert_ne!(a[0].inputs, other_seed[0].inputs);
    assert_ne!(a[0].example_indices, other_epoch[0].example_indices);
    // One epoch visits each example exactly once.
    let seen: HashSet<usize> = a.iter().flat_map(|b| b.example_indices.iter().copied()).collect();
    assert_eq!(seen.len(), 8000);
    assert_eq!(a.iter().map(|b| b.batch_size).sum::<usize>(), 8000);
}

#[test]
fn last_partial_batch_kept_or_dropped() {
    let task = row_task();
    let keep: Vec<_> = task.epoch_batches(Split::Test, 300, 1, 0, false).unwrap().collect();
    assert_eq!(keep.len(), 7);
    assert_eq!(keep.last().unwrap().as_ref().unwrap().batch_size, 2000 - 6 * 300);
    let drop = task.epoch_batches(Split::Test, 300, 1, 0, true).unwrap();
    assert_eq!(drop.num_batches(), 6);
    assert_eq!(drop.count(), 6);
    let ordered: Vec<_> =
        task.ordered_batches(Split::Test, 1000).unwrap().map(Result::unwrap).collect();
    assert_eq!(ordered[1].example_indices, (1000..2000).collect::<Vec<_>>());
}

#[test]
fn synthetic_tasks_are_seeded_and_split_independent() {
    let cfg = AddingProblemConfig { seq_len: 50, num_train: 100, num_test: 20, seed: 3 };
    let a = AddingProblemTask::new(cfg).unwrap();
    let a2 = AddingProblemTask::new(cfg).unwrap();
    let b = AddingProblemTask::new(AddingProblemConfig { seed: 4, ..cfg }).unwrap();
    let idx = [0, 17, 99];
    assert_eq!(a.batch(Split::Train, &idx).unwrap(), a2.batch(Split::Train, &idx).unwrap());
    assert_ne!(
        a.batch(Split::Train, &idx).unwrap().inputs,
        b.batch(Split::Train, &idx).unwrap().inputs
    );
    assert_ne!(
        a.batch(Split::Train, &[0]).unwrap().inputs,
        a.batch(Split::Test, &[0]).unwrap().inputs
    );
    // An example does not depend on its batch.
    let together = a.batch(Split::Train, &[5, 6]).unwrap();
    let alone = a.batch(Split::Train, &[6]).unwrap();
    assert_eq!(&together.inputs[100..], &alone.inputs[..]);
}

// ---------------------------------------------------------------- char LM

#[test]
fn char_lm_windows_and_targets() {
    let task = CharLmTask::moby_dick_excerpt().unwrap();
    assert_eq!((task.seq_len(), task.input_size()), (100, 83));
    assert_eq!((task.num_train(), task.num_test()), (71, 7));
    assert_eq!(task.train_chars(), 7172);
    assert_eq!(task.output_kind(), OutputKind::ClassPerStep { num_classes: 83 });
    let batch = task.batch(Split::Train, &[0, 70]).unwrap();
    check_shapes(&task, &batch, 2);
    let Targets::ClassPerStep(targets) = &batch.targets else { panic!("per-step classes") };
    let argmax = |b: usize, t: usize| {
        let row = &batch.inputs[(b * 100 + t) * 83..(b * 100 + t + 1) * 83];
        assert_eq!(row.iter().sum::<f32>(), 1.0, "one-hot");
        row.iter().position(|&x| x == 1.0).unwrap() as u32
    };
    let chars: Vec<char> = MOBY_DICK_EXCERPT.chars().collect();
    let first: String = (0..100).map(|t| task.vocab().chars()[argmax(0, t) as usize]).collect();
    assert_eq!(first, chars[..100].iter().collect::<String>());
    assert_eq!(task.vocab().decode(&targets[..100]), chars[1..101].iter().collect::<String>());
    for b in 0..2 {
        for t in 0..99 {
            assert_eq!(argmax(b, t + 1), targets[b * 100 + t], "targets are inputs shifted by one");
        }
    }
    // Test windows start at the 90 % boundary.
    let test = task.batch(Split::Test, &[0]).unwrap();
    let Targets::ClassPerStep(tt) = &test.targets else { panic!() };
    assert_eq!(task.vocab().decode(&tt[..10]), chars[7173..7183].iter().collect::<String>());
    // The window arithmetic callers use before a text is read agrees with the task's.
    assert_eq!(datasets::split_windows(task.total_chars(), 100, 0.9), (71, 7));
    assert_eq!(datasets::split_windows(12, 5, 0.5), (1, 1), "6 + 6 characters, windows of 5 + 1");
    assert_eq!(datasets::split_windows(13, 5, 0.5), (1, 1), "6 + 7 characters");
}

#[test]
fn char_lm_rejects_text_too_short() {
    let vocab = datasets::CharVocabulary::from_text("abc");
    let err =
        CharLmTask::new("tiny", "abcabc", Path::new("tiny.txt"), vocab, 100, 0.9).unwrap_err();
    assert!(
        matches!(err, DatasetError::InvalidConfig { .. }) && err.to_string().contains("tiny.txt"),
        "{err}"
    );
}

// ---------------------------------------------------------------- synthetic tasks

#[test]
fn sum_of_sines_targets_are_next_values() {
    let cfg = SumOfSinesConfig { num_train: 10, num_test: 5, seed: 11, ..Default::default() };
    let task = SumOfSinesTask::new(cfg).unwrap();
    assert_eq!((task.seq_len(), task.input_size()), (100, 1));
    let batch = task.batch(Split::Train, &[0, 9]).unwrap();
    check_shapes(&task, &batch, 2);
    let Targets::ValuePerStep(y) = &batch.targets else { panic!() };
    for b in 0..2 {
        for t in 0..99 {
            assert_eq!(y[b * 100 + t], batch.inputs[b * 100 + t + 1]);
        }
    }
    assert!(batch.inputs.iter().all(|x| x.abs() <= 1.0));
    let var = batch.inputs.iter().map(|x| x * x).sum::<f32>() / batch.inputs.len() as f32;
    assert!(var > 0.01, "signal is not flat: {var}");
    // A sum of sines obeys x_{t+1} + x_{t-1} = 2 cos(2 pi f) x_t per component; with K = 1
    // the whole signal does.
    let one = SumOfSinesTask::new(SumOfSinesConfig { num_sines: 1, ..cfg }).unwrap();
    let x = one.signal(Split::Test, 2);
    let c = (x[0] + x[2]) / x[1];
    for t in 1..100 {
        let lhs = f64::from(x[t + 1] + x[t - 1]);
        let rhs = f64::from(c * x[t]);
        assert!((lhs - rhs).abs() < f64::from(SINE_F32_TOLERANCE) * 10.0, "t={t}: {lhs} vs {rhs}");
    }
    assert!(SumOfSinesTask::new(SumOfSinesConfig { max_frequency: 0.6, ..cfg }).is_err());
}

#[test]
fn adding_problem_structure() {
    let cfg = AddingProblemConfig { seq_len: 60, num_train: 50, num_test: 10, seed: 1 };
    let task = AddingProblemTask::new(cfg).unwrap();
    let idx: Vec<usize> = (0..50).collect();
    let batch = task.batch(Split::Train, &idx).unwrap();
    check_shapes(&task, &batch, 50);
    assert_eq!(batch.target_shape(), vec![50, 1]);
    let Targets::ValuePerSequence(y) = &batch.targets else { panic!() };
    for (b, &target) in y.iter().enumerate() {
        let seq = &batch.inputs[b * 120..(b + 1) * 120];
        let marks: Vec<usize> = (0..60).filter(|&t| seq[t * 2 + 1] == 1.0).collect();
        assert_eq!(marks.len(), 2);
        assert!(marks[0] < 30 && marks[1] >= 30, "{marks:?}");
        assert_eq!(target, seq[marks[0] * 2] + seq[marks[1] * 2]);
        assert!((0..60).all(|t| (0.0..1.0).contains(&seq[t * 2])));
    }
    assert!(AddingProblemTask::new(AddingProblemConfig { seq_len: 1, ..cfg }).is_err());
}

#[test]
fn copy_memory_structure() {
    let task =
        CopyMemoryTask::new(CopyMemoryConfig { num_train: 20, num_test: 5, ..Default::default() })
            .unwrap();
    assert_eq!((task.seq_len(), task.input_size()), (120, 10));
    assert_eq!(task.output_kind(), OutputKind::ClassPerStep { num_classes: 9 });
    for i in 0..20 {
        let (x, y) = task.symbols(Split::Train, i);
        assert!(x[..10].iter().all(|&s| (1..=8).contains(&s)));
        assert!(x[10..109].iter().all(|&s| s == 0));
        assert_eq!(x[109], 9, "delimiter at D + L - 1");
        assert!(x[110..].iter().all(|&s| s == 0));
        assert!(y[..110].iter().all(|&s| s == 0));
        assert_eq!(&y[110..], &x[..10]);
    }
    let batch = task.batch(Split::Test, &[0, 4]).unwrap();
    check_shapes(&task, &batch, 2);
    assert_eq!(batch.inputs.iter().sum::<f32>(), 240.0, "one-hot: one 1 per step");
}

// ---------------------------------------------------------------- driving sequences + candle

#[test]
fn driving_sequences_are_fixed_and_roundtrip_through_safetensors() {
    let task = row_task();
    let d = task.driving_sequences(15, 2024).unwrap();
    assert_eq!(d.shape(), [15, 28, 28]);
    assert_eq!(d, task.driving_sequences(15, 2024).unwrap());
    assert_ne!(d.test_indices, task.driving_sequences(15, 2025).unwrap().test_indices);
    let direct = task.batch(Split::Test, &d.test_indices).unwrap();
    assert_eq!(direct.inputs, d.inputs);
    assert_eq!(d.sequence(3), &direct.inputs[3 * 784..4 * 784]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driving.safetensors");
    d.save_safetensors(&path).unwrap();
    assert!(!dir.path().join("driving.safetensors.tmp").exists());
    let loaded = DrivingSequences::load_safetensors(&path).unwrap();
    assert_eq!(loaded, d);

    // The file is plain safetensors: tensor `inputs`, F32, [B, T, I].
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("inputs").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    assert_eq!(view.shape(), &[15, 28, 28]);

    let tensor = d.to_tensor(&Device::Cpu).unwrap();
    assert_eq!(tensor.dims(), &[15, 28, 28]);
    let flat: Vec<f32> = tensor.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(flat, d.inputs);

    assert!(task.driving_sequences(2001, 0).is_err());
    assert!(task.driving_sequences(0, 0).is_err());
}

#[test]
fn driving_sequences_file_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = DrivingSequences::load_safetensors(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::Safetensors { .. })
            && err.to_string().contains("bad.safetensors"),
        "{err}"
    );
    // Right container, wrong dtype.
    let data = vec![0u8; 2 * 3 * 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2, 3, 2], &data)
        .unwrap();
    let bytes = safetensors::serialize([("inputs", view)], None).unwrap();
    let err =
        DrivingSequences::from_safetensors_bytes(&bytes, Path::new("f16.safetensors")).unwrap_err();
    assert!(err.to_string().contains("expected F32"), "{err}");
    // Missing file.
    let err = DrivingSequences::load_safetensors(&dir.path().join("nope.safetensors")).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }), "{err:?}");
}

#[test]
fn batches_convert_to_candle_tensors() {
    let task = row_task();
    let batch = task.batch(Split::Train, &[1, 2, 3, 4]).unwrap();
    let (inputs, labels) = (batch.inputs.clone(), batch.targets.clone());
    let (x, y) = batch.into_tensors(&Device::Cpu).unwrap();
    assert_eq!((x.dims(), x.dtype()), (&[4, 28, 28][..], DType::F32));
    assert_eq!((y.dims(), y.dtype()), (&[4][..], DType::U32));
    assert_eq!(x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), inputs);
    let Targets::ClassPerSequence(labels) = labels else { panic!() };
    assert_eq!(y.to_vec1::<u32>().unwrap(), labels);

    let sines =
        SumOfSinesTask::new(SumOfSinesConfig { num_train: 4, num_test: 2, ..Default::default() })
            .unwrap();
    let (x, y) = sines.batch(Split::Train, &[0, 1, 2]).unwrap().into_tensors(&Device::Cpu).unwrap();
    assert_eq!((x.dims(), y.dims(), y.dtype()), (&[3, 100, 1][..], &[3, 100, 1][..], DType::F32));
    let lm = CharLmTask::moby_dick_excerpt().unwrap();
    let (x, y) = lm.batch(Split::Test, &[0, 1]).unwrap().into_tensors(&Device::Cpu).unwrap();
    assert_eq!((x.dims(), y.dims(), y.dtype()), (&[2, 100, 83][..], &[2, 100][..], DType::U32));
}

// ---------------------------------------------------------------- every task, through dyn Task

#[test]
fn every_task_honours_the_task_contract() {
    let (tr, te) = (40, 10);
    let tasks: Vec<Box<dyn Task>> = vec![
        Box::new(row_task()),
        Box::new(SequentialImageTask::mnist_10k(PixelOrder::PixelWise).unwrap()),
        Box::new(
            SequentialImageTask::mnist_10k(PixelOrder::PermutedPixelWise { seed: 3 }).unwrap(),
        ),
        Box::new(CharLmTask::moby_dick_excerpt().unwrap()),
        Box::new(
            SumOfSinesTask::new(SumOfSinesConfig {
                num_train: tr,
                num_test: te,
                ..Default::default()
            })
            .unwrap(),
        ),
        Box::new(
            AddingProblemTask::new(AddingProblemConfig {
                num_train: tr,
                num_test: te,
                ..Default::default()
            })
            .unwrap(),
        ),
        Box::new(
            CopyMemoryTask::new(CopyMemoryConfig {
                num_train: tr,
                num_test: te,
                ..Default::default()
            })
            .unwrap(),
        ),
    ];
    let mut names = HashSet::new();
    for task in &tasks {
        let task: &dyn Task = task.as_ref();
        assert!(names.insert(task.name()), "task names are distinct: {}", task.name());
        let mut seen = 0;
        let mut iter = datasets::BatchIter::for_epoch(task, Split::Train, 16, 9, 0, false).unwrap();
        assert_eq!(iter.num_batches(), task.num_train().div_ceil(16));
        let first = iter.next().unwrap().unwrap();
        assert_eq!(first.input_shape(), [16, task.seq_len(), task.input_size()]);
        assert_eq!(first.output_kind, task.output_kind());
        seen += first.batch_size;
        for batch in iter {
            let batch = batch.unwrap();
            assert_eq!(batch.inputs.len(), batch.batch_size * task.seq_len() * task.input_size());
            seen += batch.batch_size;
        }
        assert_eq!(seen, task.num_train(), "{}", task.name());
        // Class targets are in range.
        let b = task.batch(Split::Test, &[0, task.num_test() - 1]).unwrap();
        if let (Some(k), Targets::ClassPerSequence(v) | Targets::ClassPerStep(v)) =
            (task.num_classes(), &b.targets)
        {
            assert!(v.iter().all(|&c| (c as usize) < k), "{}", task.name());
        }
        let d = task.driving_sequences(3, 1).unwrap();
        assert_eq!(d.shape(), [3, task.seq_len(), task.input_size()]);
        assert_eq!(d.task, task.name());
        let err = task.batch(Split::Test, &[task.num_test()]).unwrap_err();
        assert!(matches!(err, DatasetError::IndexOutOfRange { .. }), "{err:?}");
    }
}

#[test]
fn image_task_rejects_mismatched_image_sizes() {
    let mut data = datasets::mnist_10k_split().unwrap();
    data.test = datasets::ImageSet {
        images: vec![0; 2 * 16],
        labels: vec![1, 2],
        rows: 4,
        cols: 4,
        num_classes: 10,
    };
    let err =
        SequentialImageTask::new(data, PixelOrder::PixelWise, Default::default()).unwrap_err();
    assert!(
        matches!(err, DatasetError::InvalidConfig { .. }) && err.to_string().contains("4x4"),
        "{err}"
    );
}
