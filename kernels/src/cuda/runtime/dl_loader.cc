#include "cuda/runtime/dl_loader.h"

#include <dlfcn.h>
#include <link.h>

#include <stdexcept>
#include <vector>

namespace weft::cuda {

namespace {

// Where a library is looked for when the dynamic loader's own search (ld.so.cache, LD_LIBRARY_PATH) misses:
// the CUDA toolkit's default install directory, which is not always registered with ldconfig.
const char* const kToolkitLibDir = "/usr/local/cuda/lib64/";

// An opened shared library. Never closed: the tables below point into it for the life of the process.
class Library {
 public:
  // Tries each candidate soname, then each in kToolkitLibDir. On failure, throws `install_hint` with dlerror().
  Library(const char* what, const std::vector<std::string>& names, const std::string& install_hint) {
    std::string first_error;
    for (const char* dir : {"", kToolkitLibDir}) {
      for (const std::string& name : names) {
        const std::string candidate = dir + name;
        handle_ = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle_) {
          name_ = candidate;
          return;
        }
        const char* e = dlerror();
        if (first_error.empty() && e) first_error = e;
      }
    }
    std::string tried;
    for (const std::string& name : names) tried += (tried.empty() ? "" : ", ") + name;
    throw std::runtime_error(std::string(what) + " is not available: could not load " + tried + " (" + first_error +
                             "). " + install_hint);
  }

  // Resolves `symbol` into `fn`; a required symbol that is missing throws, an optional one leaves fn null.
  template <class Fn>
  void bind(Fn*& fn, const char* symbol, bool required = true) {
    dlerror();
    void* p = dlsym(handle_, symbol);
    if (!p && required)
      throw std::runtime_error(name_ + " (" + path() + ") has no symbol " + symbol +
                               ": the library is older than weft needs; install a newer one");
    fn = reinterpret_cast<Fn*>(p);
  }

  // The file the loader actually mapped (a soname resolves to a full path), for messages and diagnostics.
  std::string path() const {
    struct link_map* map = nullptr;
    if (dlinfo(handle_, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0]) return map->l_name;
    return name_;
  }

 private:
  void* handle_ = nullptr;
  std::string name_;
};

const char* const kCublasHint =
    "Install cuBLAS from the CUDA toolkit (e.g. the libcublas-13-0 or cuda-libraries-13-0 package, or pip "
    "nvidia-cublas) and make sure its directory (e.g. /usr/local/cuda/lib64) is known to the dynamic loader "
    "(ldconfig or LD_LIBRARY_PATH)";
const char* const kNcclHint =
    "Install NCCL 2 (e.g. the libnccl2 package, or pip nvidia-nccl-cu13) and make sure libnccl.so.2 is known to the "
    "dynamic loader (ldconfig or LD_LIBRARY_PATH); or use the shm collective for ranks on one host";

template <class Api>
struct Loaded {
  Api api{};
  std::string error;
};

template <class Api, class LoadFn>
Loaded<Api> load_or_record(LoadFn load) {
  Loaded<Api> l;
  try {
    l.api = load();
  } catch (const std::exception& e) {
    l.error = e.what();
  }
  return l;
}

CublasLtApi load_cublaslt() {
  Library lib("cuBLASLt", {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, kCublasHint);
  CublasLtApi a{};
  lib.bind(a.create, "cublasLtCreate");
  lib.bind(a.destroy, "cublasLtDestroy");
  lib.bind(a.desc_create, "cublasLtMatmulDescCreate");
  lib.bind(a.desc_destroy, "cublasLtMatmulDescDestroy");
  lib.bind(a.desc_set, "cublasLtMatmulDescSetAttribute");
  lib.bind(a.layout_create, "cublasLtMatrixLayoutCreate");
  lib.bind(a.layout_destroy, "cublasLtMatrixLayoutDestroy");
  lib.bind(a.pref_create, "cublasLtMatmulPreferenceCreate");
  lib.bind(a.pref_destroy, "cublasLtMatmulPreferenceDestroy");
  lib.bind(a.pref_set, "cublasLtMatmulPreferenceSetAttribute");
  lib.bind(a.heuristic, "cublasLtMatmulAlgoGetHeuristic");
  lib.bind(a.matmul, "cublasLtMatmul");
  lib.bind(a.status_string, "cublasLtGetStatusString", false);
  lib.bind(a.version, "cublasLtGetVersion", false);
  a.path = lib.path();
  return a;
}

CublasApi load_cublas() {
  Library lib("cuBLAS", {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, kCublasHint);
  CublasApi a{};
  lib.bind(a.create, "cublasCreate_v2");
  lib.bind(a.destroy, "cublasDestroy_v2");
  lib.bind(a.set_stream, "cublasSetStream_v2");
  lib.bind(a.status_string, "cublasGetStatusString", false);
  a.path = lib.path();
  return a;
}

NcclApi load_nccl() {
  Library lib("NCCL", {"libnccl.so.2", "libnccl.so"}, kNcclHint);
  NcclApi a{};
  lib.bind(a.get_unique_id, "ncclGetUniqueId");
  lib.bind(a.comm_init_rank, "ncclCommInitRank");
  lib.bind(a.all_reduce, "ncclAllReduce");
  lib.bind(a.all_gather, "ncclAllGather");
  lib.bind(a.comm_destroy, "ncclCommDestroy");
  lib.bind(a.error_string, "ncclGetErrorString");
  lib.bind(a.version, "ncclGetVersion", false);
  a.path = lib.path();
  return a;
}

}  // namespace

const CublasLtApi& cublaslt() {
  static const Loaded<CublasLtApi> l = load_or_record<CublasLtApi>(load_cublaslt);
  if (!l.error.empty()) throw std::runtime_error(l.error);
  return l.api;
}

const CublasApi& cublas() {
  static const Loaded<CublasApi> l = load_or_record<CublasApi>(load_cublas);
  if (!l.error.empty()) throw std::runtime_error(l.error);
  return l.api;
}

const NcclApi& nccl() {
  static const Loaded<NcclApi> l = load_or_record<NcclApi>(load_nccl);
  if (!l.error.empty()) throw std::runtime_error(l.error);
  return l.api;
}

std::string cublas_status_text(lt::Status status) {
  std::string text;
  try {
    const CublasLtApi& a = cublaslt();
    if (a.status_string) {
      const char* s = a.status_string(status);
      if (s) text = s;
    }
  } catch (const std::exception&) {
  }
  if (text.empty()) text = "cuBLAS status";
  return text + " (" + std::to_string(status) + ")";
}

std::string nccl_result_text(nccl_abi::Result result) {
  std::string text;
  try {
    const char* s = nccl().error_string(result);
    if (s) text = s;
  } catch (const std::exception&) {
  }
  if (text.empty()) text = "NCCL error";
  return text + " (ncclResult_t " + std::to_string(result) + ")";
}

}  // namespace weft::cuda
