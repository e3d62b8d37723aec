//! Character-level language modelling (next-character prediction), as in the char-RNN setting.
//!
//! The text is mapped to ids by a [`CharVocabulary`] (its characters sorted by code point, id =
//! position). The id sequence `c_0 .. c_{N-1}` is split *contiguously*: the first
//! `floor(train_fraction * N)` characters are train, the rest test (default 90 / 10). Each
//! split is cut into non-overlapping windows of `T + 1` characters stepping by `T` (default
//! `T = 100`): example `k` of a split starting at `s` has
//! inputs `one_hot(c_{s+kT} .. c_{s+kT+T-1})`, shape `[T, V]`, and targets
//! `c_{s+kT+1} .. c_{s+kT+T}`, shape `[T]`. So a batch is inputs `[B, T, V]`, targets `[B, T]`.
//!
//! Data: the full Moby-Dick text (`scripts/fetch-moby-dick.sh`, 1,190,317 characters, 83
//! distinct) and a committed excerpt (its first 7,969 characters) for tests; the committed
//! vocabulary is that of the full text, so models trained on either share ids.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};
use crate::task::{Batch, OutputKind, Split, Task, check_indices, one_hot_batch};

/// Sequence length of the published char-RNN setting.
pub const CHAR_LM_SEQ_LEN: usize = 100;
/// Fraction of the text (from the start) used for training.
pub const CHAR_LM_TRAIN_FRACTION: f64 = 0.9;
/// The first 7,969 characters of Moby-Dick (public domain), for tests and quick runs.
pub const MOBY_DICK_EXCERPT: &str = include_str!("../data/moby-dick/excerpt.txt");
/// Characters of the full Moby-Dick text (`scripts/fetch-moby-dick.sh`; its sha256 is checked
/// there), so that callers can bound window counts before the text is read.
pub const MOBY_DICK_CHARS: usize = 1_190_317;
/// Vocabulary of the full Moby-Dick text: JSON array of its 83 distinct characters, sorted.
pub const MOBY_DICK_VOCABULARY_JSON: &str = include_str!("../data/moby-dick/vocab.json");

/// A character vocabulary: id `k` is the `k`-th character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharVocabulary {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

impl CharVocabulary {
    /// The distinct characters of `text`, sorted by code point.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        Self { chars, ids }
    }

    /// Parses a vocabulary file: a JSON array of one-character strings, distinct, in id order.
    /// `path` only names the source in errors.
    pub fn from_json(json: &str, path: &Path) -> Result<Self> {
        let bad =
            |message: String| DatasetError::BadVocabulary { path: path.to_path_buf(), message };
        let entries: Vec<String> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let mut chars = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let mut it = entry.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => chars.push(c),
                _ => return Err(bad(format!("entry {i} is {entry:?}, not one character"))),
            }
        }
        let vocab = Self::from_chars(chars);
        if vocab.ids.len() != vocab.chars.len() {
            return Err(bad("duplicate characters".to_string()));
        }
        if vocab.chars.is_empty() {
            return Err(bad("empty vocabulary".to_string()));
        }
        Ok(vocab)
    }

    /// Reads a vocabulary file (see [`CharVocabulary::from_json`]).
    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path)
            .map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
        Self::from_json(&json, path)
    }

    /// The vocabulary of the full Moby-Dick text (committed).
    pub fn moby_dick() -> Result<Self> {
        Self::from_json(
            MOBY_DICK_VOCABULARY_JSON,
            Path::new("embedded:crates/datasets/data/moby-dick/vocab.json"),
        )
    }

    /// The JSON form read by [`CharVocabulary::from_json`].
    pub fn to_json(&self) -> String {
        let entries: Vec<String> =
            self.chars.iter().map(std::string::ToString::to_string).collect();
        serde_json::to_string(&entries).unwrap_or_default()
    }

    /// Number of characters `V`.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Id of `c`, if in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.ids.get(&c).copied()
    }

    /// Ids of every character of `text`; errors on the first unknown character.
    pub fn encode(&self, text: &str, path: &Path) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(offset, ch)| {
                self.id(ch).ok_or_else(|| DatasetError::CharNotInVocabulary {
                    path: path.to_path_buf(),
                    ch,
                    offset,
                    vocab: format!("of {} characters", self.len()),
                })
            })
            .collect()
    }

    /// The text of `ids` (ids out of range become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.chars.get(i as usize).copied().unwrap_or('\u{fffd}')).collect()
    }
}

/// `(train, test)` windows of a text of `total_chars` characters split as in the module docs:
/// the first `floor(train_fraction * total_chars)` characters are train, and a split of `n`
/// characters holds `(n - 1) / seq_len` windows of `seq_len + 1` (`seq_len` >= 1).
pub fn split_windows(total_chars: usize, seq_len: usize, train_fraction: f64) -> (usize, usize) {
    let train = (train_fraction * total_chars as f64).floor() as usize;
    let windows = |n: usize| n.saturating_sub(1) / seq_len.max(1);
    (windows(train), windows(total_chars.saturating_sub(train)))
}

/// Next-character prediction over a text (see the module docs).
#[derive(Clone, Debug)]
pub struct CharLmTask {
    name: String,
    vocab: CharVocabulary,
    ids: Vec<u32>,
    train_len: usize,
    seq_len: usize,
}

impl CharLmTask {
    /// A task over `text` with `vocab`, windows of `seq_len` steps, the first
    /// `floor(train_fraction * N)` characters for training. `source` names the text in errors.
    /// Errors if a character is not in `vocab` or a split has no full window.
    pub fn new(
        name: &str,
        text: &str,
        source: &Path,
        vocab: CharVocabulary,
        seq_len: usize,
        train_fraction: f64,
    ) -> Result<Self> {
        let invalid =
            |message: String| DatasetError::InvalidConfig { task: name.to_string(), message };
        if seq_len == 0 {
            return Err(invalid("seq_len must be at least 1".to_string()));
        }
        if !(train_fraction > 0.0 && train_fraction < 1.0) {
            return Err(invalid(format!("train_fraction {train_fraction} must be in (0, 1)")));
        }
        let ids = vocab.encode(text, source)?;
        let train_len = (train_fraction * ids.len() as f64).floor() as usize;
        let task = Self { name: name.to_string(), vocab, ids, train_len, seq_len };
        if task.num_train() == 0 || task.num_test() == 0 {
            return Err(invalid(format!(
                "{}: {} characters give {} train and {} test windows of {} + 1; need at least one each",
                source.display(),
                task.ids.len(),
                task.num_train(),
                task.num_test(),
                seq_len
            )));
        }
        Ok(task)
    }

    /// The committed Moby-Dick excerpt with the full-text vocabulary, `T = 100`, 90 / 10 split
    /// (71 train / 7 test windows).
    pub fn moby_dick_excerpt() -> Result<Self> {
        Self::new(
            "moby-dick-excerpt-char",
            MOBY_DICK_EXCERPT,
            Path::new("embedded:crates/datasets/data/moby-dick/excerpt.txt"),
            CharVocabulary::moby_dick()?,
            CHAR_LM_SEQ_LEN,
            CHAR_LM_TRAIN_FRACTION,
        )
    }

    /// The full Moby-Dick text from `dir/data.txt` (written by `scripts/fetch-moby-dick.sh`),
    /// committed vocabulary, `T = 100`, 90 / 10 split.
    pub fn moby_dick_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("data.txt");
        if !path.is_file() {
            return Err(DatasetError::MissingFile {
                dir: dir.to_path_buf(),
                what: "Moby-Dick text".to_string(),
                candidates: vec!["data.txt".to_string()],
                fetch_hint: "scripts/fetch-moby-dick.sh".to_string(),
            });
        }
        let text = read_utf8(&path)?;
        Self::new(
            "moby-dick-char",
            &text,
            &path,
            CharVocabulary::moby_dick()?,
            CHAR_LM_SEQ_LEN,
            CHAR_LM_TRAIN_FRACTION,
        )
    }

    /// Default folder of the full text: `$AELLE_DATASETS_DIR/moby-dick`, else
    /// `datasets/moby-dick` relative to the working directory.
    pub fn moby_dick_default_dir() -> PathBuf {
        std::env::var_os("AELLE_DATASETS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("datasets"))
            .join("moby-dick")
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &CharVocabulary {
        &self.vocab
    }

    /// Number of characters in the train part (the test part is the rest).
    pub fn train_chars(&self) -> usize {
        self.train_len
    }

    /// Total number of characters.
    pub fn total_chars(&self) -> usize {
        self.ids.len()
    }

    fn span(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.ids[..self.train_len],
            Split::Test => &self.ids[self.train_len..],
        }
    }

    fn windows(&self, split: Split) -> usize {
        self.span(split).len().saturating_sub(1) / self.seq_len
    }
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|e| DatasetError::TextNotUtf8 {
        path: path.to_path_buf(),
        valid_up_to: e.utf8_error().valid_up_to(),
    })
}

impl Task for CharLmTask {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn num_train(&self) -> usize {
        self.windows(Split::Train)
    }

    fn num_test(&self) -> usize {
        self.windows(Split::Test)
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn input_size(&self) -> usize {
        self.vocab.len()
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::ClassPerStep { num_classes: self.vocab.len() }
    }

    /// Inputs one-hot `[B, T, V]`, targets next-character ids `[B, T]`.
    fn batch(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        check_indices(&|| self.name(), split, indices, self.windows(split))?;
        let (t, v) = (self.seq_len, self.vocab.len());
        let span = self.span(split);
        Ok(one_hot_batch(indices, (t, v), self.output_kind(), |k| {
            let window = &span[k * t..k * t + t + 1];
            (&window[..t], &window[1..])
        }))
    }
}
