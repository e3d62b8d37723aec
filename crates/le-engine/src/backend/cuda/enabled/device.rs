//! One CUDA device: context, stream, cuBLAS handle, and the kernel modules of `aelle-kernels`
//! compiled by NVRTC at first use and cached per device (the candle `get_or_load_func`
//! pattern). Every CUDA library is probed with `is_culib_present()` before its first use, so a
//! missing driver or library is a [`CudaError`], never a panic.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::{CompileError, CompileOptions, compile_ptx_with_opts};

use crate::backend::CudaError;

/// NVRTC options of every module: C++17, PTX for compute capability 7.0 (Volta) and newer; the
/// driver compiles the PTX for the actual GPU when the module is loaded.
pub(crate) const NVRTC_OPTIONS: [&str; 2] = ["--std=c++17", "--gpu-architecture=compute_70"];

pub(crate) fn driver_error(e: DriverError) -> CudaError {
    CudaError::Driver(e.to_string())
}

/// Run `f`, turning a panic inside cudarc (e.g. a symbol missing from an old library) into an
/// error.
pub(crate) fn guarded<T, E: From<CudaError>>(
    what: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(std::string::ToString::to_string))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CudaError::Driver(format!("{what} panicked: {msg}")).into())
        }
    }
}

/// Whether the NVIDIA driver library can be loaded.
pub(crate) fn driver_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether libnvrtc can be loaded.
pub(crate) fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether libcublas can be loaded.
pub(crate) fn cublas_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

fn nvrtc_missing() -> CudaError {
    CudaError::LibraryMissing {
        library: "libnvrtc",
        hint: "install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` and put the \
               folder holding libnvrtc.so.12 on LD_LIBRARY_PATH",
    }
}

/// Compile the module named `name` (one of `aelle_kernels::ALL_MODULES`) to PTX with the
/// backend's options. Needs libnvrtc, no GPU.
pub fn compile_module_ptx(name: &str) -> Result<String, CudaError> {
    let module = aelle_kernels::ALL_MODULES
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| CudaError::Unsupported(format!("no kernel module named `{name}`")))?;
    Ok(compile(module)?.to_src())
}

/// Environment variable naming a folder of precompiled `<module>.ptx` files (written by
/// [`compile_module_ptx`], e.g. `gpu_check --emit-ptx DIR`): when set, modules whose file exists
/// there are loaded from it instead of being compiled, so a GPU machine needs no libnvrtc.
pub const PTX_DIR_ENV: &str = "AELLE_PTX_DIR";

/// Names of the kernel modules (`aelle_kernels::ALL_MODULES`).
pub fn kernel_module_names() -> Vec<&'static str> {
    aelle_kernels::ALL_MODULES.iter().map(|m| m.name).collect()
}

fn compile(module: &'static aelle_kernels::Module) -> Result<cudarc::nvrtc::Ptx, CudaError> {
    if let Some(dir) = std::env::var_os(PTX_DIR_ENV) {
        let path = std::path::Path::new(&dir).join(format!("{}.ptx", module.name));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(cudarc::nvrtc::Ptx::from_src(text));
        }
    }
    if !nvrtc_present() {
        return Err(nvrtc_missing());
    }
    let opts = CompileOptions {
        options: NVRTC_OPTIONS.iter().map(std::string::ToString::to_string).collect(),
        name: Some(format!("{}.cu", module.name)),
        ..Default::default()
    };
    guarded("NVRTC", || {
        compile_ptx_with_opts(module.source, opts).map_err(|e| match e {
            CompileError::CompileError { log, .. } => {
                CudaError::Compile { module: module.name, log: log.to_string_lossy().into_owned() }
            }
            other => CudaError::Compile { module: module.name, log: format!("{other:?}") },
        })
    })
}

/// A device with its stream, cuBLAS handle and loaded kernels.
pub(crate) struct DeviceState {
    pub ordinal: usize,
    pub name: String,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// `None` when libcublas cannot be loaded (the built-in GEMM kernel is used then).
    pub blas: Option<CudaBlas>,
    pub sm_count: u32,
    /// Largest dynamic shared memory a kernel may opt in to, bytes.
    pub max_shared_optin: usize,
    modules: Mutex<Vec<Option<Arc<CudaModule>>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    /// Runs on one device are serialised (they share the stream).
    pub run_lock: Mutex<()>,
}

impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("cublas", &self.blas.is_some())
            .field("sm_count", &self.sm_count)
            .field("max_shared_optin", &self.max_shared_optin)
            .finish()
    }
}

static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<DeviceState>>>> = OnceLock::new();

/// The cached state of device `ordinal`, created on first use.
pub(crate) fn device_state(ordinal: usize) -> Result<Arc<DeviceState>, CudaError> {
    let cache = DEVICES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(d) = map.get(&ordinal) {
        return Ok(d.clone());
    }
    let state = Arc::new(guarded("CUDA initialisation", || DeviceState::open(ordinal))?);
    map.insert(ordinal, state.clone());
    Ok(state)
}

impl DeviceState {
    fn open(ordinal: usize) -> Result<Self, CudaError> {
        if !driver_present() {
            return Err(CudaError::LibraryMissing {
                library: "libcuda (the NVIDIA driver)",
                hint: "no NVIDIA driver is installed on this machine",
            });
        }
        if !nvrtc_present() {
            return Err(nvrtc_missing());
        }
        let count = CudaContext::device_count().map_err(driver_error)?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::Driver(format!(
                "no CUDA device {ordinal} (this machine has {count})"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver_error)?;
        let stream = ctx.default_stream();
        let blas = if cublas_present() {
            Some(CudaBlas::new(stream.clone()).map_err(|e| CudaError::Blas(e.to_string()))?)
        } else {
            None
        };
        let name = ctx.name().map_err(driver_error)?;
        let sm_count = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(driver_error)?
            .max(1) as u32;
        let max_shared_optin = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map_err(driver_error)?
            .max(48 * 1024) as usize;
        Ok(Self {
            ordinal,
            name,
            ctx,
            stream,
            blas,
            sm_count,
            max_shared_optin,
            modules: Mutex::new(vec![None; aelle_kernels::ALL_MODULES.len()]),
            functions: Mutex::new(HashMap::new()),
            run_lock: Mutex::new(()),
        })
    }

    /// The kernel `entry` (compiling and loading its module on first use).
    pub fn function(&self, entry: &'static str) -> Result<CudaFunction, CudaError> {
        let mut functions =
            self.functions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = functions.get(entry) {
            return Ok(f.clone());
        }
        let module_def = aelle_kernels::module_of(entry)
            .ok_or_else(|| CudaError::Unsupported(format!("no kernel named `{entry}`")))?;
        let slot = aelle_kernels::module_index(module_def).expect("registered module");
        let module = {
            let mut modules =
                self.modules.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &modules[slot] {
                Some(m) => m.clone(),
                None => {
                    let ptx = compile(module_def)?;
                    let m = self.ctx.load_module(ptx).map_err(driver_error)?;
                    modules[slot] = Some(m.clone());
                    m
                }
            }
        };
        let f = module.load_function(entry).map_err(driver_error)?;
        functions.insert(entry, f.clone());
        Ok(f)
    }

    /// Allow `f` to use `bytes` of dynamic shared memory (above the default 48 KiB).
    pub fn allow_shared_memory(&self, f: &CudaFunction, bytes: usize) -> Result<(), CudaError> {
        f.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes as i32,
        )
        .map_err(driver_error)
    }

    /// Free device memory in bytes.
    pub fn free_memory(&self) -> Result<usize, CudaError> {
        self.ctx.mem_get_info().map(|(free, _)| free).map_err(driver_error)
    }
}
