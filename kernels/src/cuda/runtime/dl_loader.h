// cuBLASLt, cuBLAS and NCCL, loaded at run time with dlopen. The development machines and CI have no headers or
// libraries for them, so the few entry points used are declared here by hand with their exact C signatures, and
// the same build runs wherever the libraries exist. A missing library or symbol is reported (std::runtime_error
// naming the library and what to install) only when someone asks for it, never at addon load.
//
// Where the numbers come from (the public headers, as NVIDIA publishes them):
//  - cuBLAS/cuBLASLt: NVIDIA/nvmath-python nvmath/bindings/cycublas.pxd and cycublasLt.pxd — NVIDIA's own
//    bindings, generated from cublas_api.h / cublasLt.h of every release from 11.0.3 on (checked at commit
//    63409f52, May 2026), and the cuBLAS documentation (docs.nvidia.com/cuda/cublas, "cuBLASLt datatypes").
//  - NCCL: NVIDIA/nccl src/nccl.h.in (the header NCCL 2.x installs as nccl.h; checked at commit 021e8045).
//  - cudaDataType_t: library_types.h of the CUDA runtime headers (installed here; included, not copied).
#pragma once
#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace weft::cuda {

namespace lt {
using Status = int;              // cublasStatus_t
using Handle = void*;            // cublasLtHandle_t
using MatmulDesc = void*;        // cublasLtMatmulDesc_t
using Layout = void*;            // cublasLtMatrixLayout_t
using Preference = void*;        // cublasLtMatmulPreference_t

struct MatmulAlgo {              // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct HeuristicResult {         // cublasLtMatmulHeuristicResult_t
  MatmulAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes on x86-64");

constexpr Status kSuccess = 0;                 // CUBLAS_STATUS_SUCCESS
constexpr int kComputeF32 = 68;                // CUBLAS_COMPUTE_32F (fp32 accumulate, no TF32 shortcuts)
constexpr int kOpN = 0;                        // CUBLAS_OP_N
constexpr int kOpT = 1;                        // CUBLAS_OP_T
constexpr int kDescTransA = 3;                 // CUBLASLT_MATMUL_DESC_TRANSA         (int32_t, cublasOperation_t)
constexpr int kDescTransB = 4;                 // CUBLASLT_MATMUL_DESC_TRANSB         (int32_t)
constexpr int kDescEpilogue = 7;               // CUBLASLT_MATMUL_DESC_EPILOGUE       (uint32_t, cublasLtEpilogue_t)
constexpr int kDescBiasPointer = 8;            // CUBLASLT_MATMUL_DESC_BIAS_POINTER   (const void*)
constexpr uint32_t kEpilogueDefault = 1;       // CUBLASLT_EPILOGUE_DEFAULT
constexpr uint32_t kEpilogueBias = 4;          // CUBLASLT_EPILOGUE_BIAS: D += bias[row of D], bias type = D type
constexpr int kPrefMaxWorkspaceBytes = 1;      // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t)
constexpr int kPrefMinAlignmentA = 5;          // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (uint32_t)
constexpr int kPrefMinAlignmentB = 6;          // ..._B_BYTES
constexpr int kPrefMinAlignmentC = 7;          // ..._C_BYTES
constexpr int kPrefMinAlignmentD = 8;          // ..._D_BYTES
}  // namespace lt

struct CublasLtApi {
  lt::Status (*create)(lt::Handle* handle);
  lt::Status (*destroy)(lt::Handle handle);
  lt::Status (*desc_create)(lt::MatmulDesc* desc, int compute_type, cudaDataType_t scale_type);
  lt::Status (*desc_destroy)(lt::MatmulDesc desc);
  lt::Status (*desc_set)(lt::MatmulDesc desc, int attr, const void* buf, size_t size);
  lt::Status (*layout_create)(lt::Layout* layout, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  lt::Status (*layout_destroy)(lt::Layout layout);
  lt::Status (*pref_create)(lt::Preference* pref);
  lt::Status (*pref_destroy)(lt::Preference pref);
  lt::Status (*pref_set)(lt::Preference pref, int attr, const void* buf, size_t size);
  lt::Status (*heuristic)(lt::Handle handle, lt::MatmulDesc desc, lt::Layout a, lt::Layout b, lt::Layout c,
                          lt::Layout d, lt::Preference pref, int requested, lt::HeuristicResult* results,
                          int* returned);
  lt::Status (*matmul)(lt::Handle handle, lt::MatmulDesc desc, const void* alpha, const void* a, lt::Layout a_desc,
                       const void* b, lt::Layout b_desc, const void* beta, const void* c, lt::Layout c_desc, void* d,
                       lt::Layout d_desc, const lt::MatmulAlgo* algo, void* workspace, size_t workspace_size,
                       cudaStream_t stream);
  const char* (*status_string)(lt::Status status);  // cublasLtGetStatusString; null when the library lacks it
  size_t (*version)();                               // cublasLtGetVersion, e.g. 130000 + minor * 100 + patch
  std::string path;                                  // the file that was loaded
};

// The plain cuBLAS library: only a handle and its status strings (everything else goes through cuBLASLt).
struct CublasApi {
  lt::Status (*create)(void** handle);               // cublasCreate_v2
  lt::Status (*destroy)(void* handle);               // cublasDestroy_v2
  lt::Status (*set_stream)(void* handle, cudaStream_t stream);  // cublasSetStream_v2
  const char* (*status_string)(lt::Status status);   // cublasGetStatusString
  std::string path;
};

namespace nccl_abi {
using Result = int;              // ncclResult_t
using Comm = void*;              // ncclComm_t
constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct UniqueId {                // ncclUniqueId, passed by value to ncclCommInitRank
  char internal[kUniqueIdBytes];
};
constexpr Result kSuccess = 0;   // ncclSuccess
constexpr Result kInProgress = 7;  // ncclInProgress
// ncclDataType_t
constexpr int kInt32 = 2;        // ncclInt32
constexpr int kFloat16 = 6;      // ncclFloat16
constexpr int kFloat32 = 7;      // ncclFloat32
constexpr int kBfloat16 = 9;     // ncclBfloat16 (NCCL >= 2.10)
// ncclRedOp_t
constexpr int kSum = 0;          // ncclSum
}  // namespace nccl_abi

struct NcclApi {
  nccl_abi::Result (*get_unique_id)(nccl_abi::UniqueId* id);
  nccl_abi::Result (*comm_init_rank)(nccl_abi::Comm* comm, int nranks, nccl_abi::UniqueId id, int rank);
  nccl_abi::Result (*all_reduce)(const void* send, void* recv, size_t count, int datatype, int op,
                                 nccl_abi::Comm comm, cudaStream_t stream);
  nccl_abi::Result (*all_gather)(const void* send, void* recv, size_t send_count, int datatype, nccl_abi::Comm comm,
                                 cudaStream_t stream);
  nccl_abi::Result (*comm_destroy)(nccl_abi::Comm comm);
  const char* (*error_string)(nccl_abi::Result result);
  nccl_abi::Result (*version)(int* version);          // ncclGetVersion; null when absent
  std::string path;
};

// Loaded once per process on first use; later calls return the same table or rethrow the same error.
const CublasLtApi& cublaslt();
const CublasApi& cublas();
const NcclApi& nccl();

// "CUBLAS_STATUS_NOT_SUPPORTED (15)"-style text for a status, from the library when it can say.
std::string cublas_status_text(lt::Status status);
std::string nccl_result_text(nccl_abi::Result result);

}  // namespace weft::cuda
