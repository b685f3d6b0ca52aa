// The Node-API addon of the oneDNN platform: matrix products through oneDNN's matmul primitive in f32,
// bf16 and int8 (W8A8), over weights reordered once into the layout oneDNN prefers, with the primitives
// cached per shape. One Context per kernel set (no global state); JS owns the activations, the addon the
// weights. The W8A8 arithmetic (per-token quantization, int32 sums, dequantization) is written to match
// Duet's reference (src/kernels/int8-quant.ts) bit for bit: float32 operations in the same order, round
// half to even, and no fused multiply-add (the build passes -ffp-contract=off).

#include <fcntl.h>
#include <napi.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::matmul;
using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

/** MADV_POPULATE_READ and MADV_POPULATE_WRITE (Linux 5.14; older C headers lack the names). */
#ifdef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_READ_ADVICE = MADV_POPULATE_READ;
constexpr int MADV_POPULATE_WRITE_ADVICE = MADV_POPULATE_WRITE;
#else
constexpr int MADV_POPULATE_READ_ADVICE = 22;
constexpr int MADV_POPULATE_WRITE_ADVICE = 23;
#endif

/**
 * A file mapped private (copy-on-write: never written back) into memory (the weight cache, see
 * src/weight-cache.ts), shared by the weights and views made over it: it is unmapped when the last of them
 * and the JS handle are gone.
 */
struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base != nullptr) munmap(base, size);
  }
};

/** The kinds of prepared weight, as the JS side names them. */
enum class WeightKind { F32 = 0, Bf16 = 1, Int8 = 2 };

/**
 * A prepared linear weight: [n, k] as read, kept as oneDNN's [k, n] weights in its preferred layout, in
 * pages of its own (mmap): weights allocated from the malloc heap sat between the loader's freed
 * per-tensor buffers and kept that heap from shrinking (the whole V2-Lite in W8A8 peaked 2 GiB higher).
 */
struct Weight {
  WeightKind kind;
  int64_t n;
  int64_t k;
  // The engine the weights were made on, held so that it outlives `mem` (members are destroyed in reverse
  // order), as oneDNN asks of memory objects: a worker's teardown finalizes the context and its weights in
  // any order.
  dnnl::engine eng;
  memory mem;                 // the reordered weights over `pages` (empty once freed)
  std::vector<int32_t> wsum;  // int8 only, [n]: Σ_c w[j, c], to undo the +128 shift of u8 activations
  bool freed = false;
  void* pages = nullptr;  // the weight's own mapping of `numBytes` bytes, or its bytes in `file`
  size_t numBytes = 0;
  std::shared_ptr<Mapping> file;  // set when the weight lies in a mapped cache file (not unmapped here)

  /**
   * Maps `bytes` of zeroed pages for the weight and makes them present in one call
   * (MADV_POPULATE_WRITE, Linux 5.14). On the virtual machines Duet is measured on, a first-touch fault
   * per 4 KiB page costs about 10 µs, and populating a GiB then writing it 40% less than touching it
   * page by page: V2-Lite cut to 4 layers loads in 6.1–6.4 s instead of 7.0–7.8 s in W8A8 and in 9.8 s
   * instead of 18 s in BF16 (quiet machine, docs/int8.md "Load time"). Huge pages
   * (MADV_HUGEPAGE) were no faster to fill the first time and stalled in compaction on a busy machine,
   * so they are not asked for. Older kernels refuse the advice; the pages then fault in on first touch.
   */
  bool map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    madvise(p, bytes, MADV_POPULATE_WRITE_ADVICE);
    pages = p;
    numBytes = bytes;
    return true;
  }
  void release() {
    mem = memory();
    wsum = std::vector<int32_t>();
    if (file) file.reset();
    else if (pages != nullptr) munmap(pages, numBytes);
    pages = nullptr;
    numBytes = 0;
  }
  ~Weight() { release(); }
};

/** Rows of the prepared-layout probe: the weight layout is chosen for a matmul of this many rows. */
constexpr int64_t LAYOUT_ROWS = 128;
/**
 * Most cached matmul primitives per context before the least recently used is dropped. Creating one costs
 * 0.3 – 1 ms (far more than running a small product), so the cache must hold every row count a serving
 * workload keeps meeting: with `run`'s split of large products that is at most EXACT_ROWS + (rows per
 * step) / ROW_STEP per weight shape.
 */
constexpr size_t MAX_CACHED = 4096;
/** Products of up to this many rows run on a primitive made for their exact row count. */
constexpr int64_t EXACT_ROWS = 64;
/**
 * Larger ones run as two products: the largest multiple of ROW_STEP rows, then the rest (fewer than
 * ROW_STEP rows, an exact count). A serving workload's row counts (prompt chunks, tokens routed to an
 * expert) vary from step to step; without this every new count would cost a new primitive.
 */
constexpr int64_t ROW_STEP = 32;
/**
 * Least multiply-adds of a product worth giving one more thread (~50 µs of work), or least weight bytes
 * (a product of few rows reads its weight from memory, where a second thread adds bandwidth): smaller
 * products use fewer threads. With OpenMP's passive wait (addon.ts) every fork wakes a sleeping thread
 * (tens of µs on a busy machine): on 32 rows, 4.2 M multiply-adds ran in 44 µs on one thread and 49 µs on
 * two, 8.4 M in 90 against 72 µs; one row of a 2048 × 2048 float32 weight (16 MiB) in 252 against 139 µs.
 */
constexpr int64_t MIN_MACS_PER_THREAD = 1 << 22;
constexpr int64_t MIN_WEIGHT_BYTES_PER_THREAD = 1 << 21;
/**
 * Least elements in a loop of ours worth splitting across OpenMP threads (~50 µs of a simple loop): below
 * it, waking the other thread costs about what it saves.
 */
constexpr int64_t PARALLEL_MIN = 1 << 18;

/** bf16 bit pattern nearest to the float32 `f` (ties to even; NaN kept NaN), as Duet's f32BitsToBf16. */
inline uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float fromBf16(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/** clamp(round-half-even(t), lo, hi) with NaN to 0, as int8-quant.ts's quantizeValue after its product. */
inline int32_t quantize(float t, float lo, float hi) {
  float r = std::nearbyint(t);  // the default rounding mode: to nearest, ties to even
  if (r != r) return 0;
  if (r < lo) r = lo;
  if (r > hi) r = hi;
  return static_cast<int32_t>(r);
}

/**
 * The data of typed array `v` (ArrayBuffer- or SharedArrayBuffer-backed) after checking its element type
 * and that it holds at least `need` elements: native code must never read or write past a JS array.
 */
void* typedData(const Napi::Value& v, napi_typedarray_type type, int64_t need, const char* what) {
  Napi::Env env = v.Env();
  napi_typedarray_type t;
  size_t length = 0;
  void* data = nullptr;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(env, v, &t, &length, &data, nullptr, nullptr) != napi_ok || t != type) {
    throw Napi::TypeError::New(env, std::string(what) + ": wrong array type");
  }
  if (need < 0 || static_cast<int64_t>(length) < need) {
    throw Napi::RangeError::New(env, std::string(what) + ": " + std::to_string(length) +
                                         " elements, at least " + std::to_string(need) + " needed");
  }
  return data;
}

/** A non-negative integer argument. */
int64_t count(const Napi::Value& v, const char* what) {
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be an integer >= 0");
  }
  return static_cast<int64_t>(d);
}

/**
 * A 64-bit checksum of `bytes` bytes (any length): eight independent multiply-rotate lanes over 8-byte
 * words (so the compiler can vectorize it), folded with the length. Not cryptographic: it catches a cache
 * file that was cut short, overwritten or bit-flipped, as the weight cache needs.
 */
uint64_t checksum64(const uint8_t* p, size_t bytes) {
  constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t lane[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const size_t words = bytes / 8;
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    for (int l = 0; l < 8; l++) {
      uint64_t w;
      std::memcpy(&w, p + (i + l) * 8, 8);
      uint64_t x = lane[l] + w * P2;
      lane[l] = ((x << 31) | (x >> 33)) * P1;
    }
  }
  uint64_t h = bytes * P1;
  for (int l = 0; l < 8; l++) h = (h ^ lane[l]) * P2 + static_cast<uint64_t>(l);
  for (; i < words; i++) {
    uint64_t w;
    std::memcpy(&w, p + i * 8, 8);
    h = ((h ^ w) * P1) ^ (h >> 29);
  }
  for (size_t b = words * 8; b < bytes; b++) h = ((h ^ p[b]) * P2) ^ (h >> 31);
  return h ^ (h >> 32);
}

/** Bytes of each sample of `sampledChecksum`, and the stride between samples. */
constexpr size_t SAMPLE_BYTES = 256;
constexpr size_t SAMPLE_STRIDE = 64 * 1024;

/**
 * The checksum of a sample of `bytes` bytes: SAMPLE_BYTES at every SAMPLE_STRIDE and the last
 * SAMPLE_BYTES. Reads 1/256 of the bytes and touches one page in 16: the weight cache checks every
 * weight with it at each load (a whole-file checksum cost as much as the rest of the load).
 */
uint64_t sampledChecksum(const uint8_t* p, size_t bytes) {
  uint64_t h = checksum64(p + (bytes > SAMPLE_BYTES ? bytes - SAMPLE_BYTES : 0), bytes < SAMPLE_BYTES ? bytes : SAMPLE_BYTES);
  for (size_t o = 0; o < bytes; o += SAMPLE_STRIDE) {
    const size_t len = bytes - o < SAMPLE_BYTES ? bytes - o : SAMPLE_BYTES;
    h = (h ^ checksum64(p + o, len)) * 0x9E3779B185EBCA87ull + o;
  }
  return h ^ (h >> 29);
}

/** `v` as 16 hex digits. */
std::string hex64(uint64_t v) {
  char buf[17];
  for (int i = 15; i >= 0; i--, v >>= 4) buf[i] = "0123456789abcdef"[v & 15];
  buf[16] = 0;
  return buf;
}

/** The mapping held by an `External` made by `mapFile`. */
std::shared_ptr<Mapping>& mappingArg(const Napi::Value& v, const char* what) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": not a mapped file");
  auto* m = v.As<Napi::External<std::shared_ptr<Mapping>>>().Data();
  if (!*m) throw Napi::Error::New(v.Env(), std::string(what) + ": the file was unmapped");
  return *m;
}

/** A byte range argument (offset, bytes) checked to lie within `m`. */
void checkRange(Napi::Env env, const Mapping& m, int64_t offset, int64_t bytes, const char* what) {
  if (offset < 0 || bytes < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(bytes) > m.size) {
    throw Napi::RangeError::New(env, std::string(what) + ": bytes [" + std::to_string(offset) + ", +" +
                                         std::to_string(bytes) + ") lie outside the " + std::to_string(m.size) +
                                         "-byte file");
  }
}

/** A byte range of a mapped file, from the arguments (file, offset, bytes). */
struct MappedRange {
  std::shared_ptr<Mapping> file;
  int64_t offset;
  int64_t bytes;
};

/** The (file, offset, bytes) arguments of `what`, the range checked to lie within the file. */
MappedRange rangeArgs(const Napi::CallbackInfo& info, const char* what) {
  std::shared_ptr<Mapping> file = mappingArg(info[0], what);
  int64_t offset = count(info[1], (std::string(what) + ": offset").c_str());
  int64_t bytes = count(info[2], (std::string(what) + ": bytes").c_str());
  checkRange(info.Env(), *file, offset, bytes, what);
  return {file, offset, bytes};
}

/** A weight's kind and shape [n, k], as the addon's functions take them. */
struct WeightShape {
  WeightKind kind;
  int64_t n;
  int64_t k;
};

/** The kind (info[at]: 0, 1 or 2) and shape (info[at + n], info[at + k]: integers >= 1) arguments. */
WeightShape shapeArgs(const Napi::CallbackInfo& info, int kindAt, int nAt, int kAt, const std::string& what) {
  Napi::Env env = info.Env();
  int kindArg = info[kindAt].As<Napi::Number>().Int32Value();
  if (kindArg < 0 || kindArg > 2) throw Napi::RangeError::New(env, what + ": kind must be 0, 1 or 2");
  int64_t n = count(info[nAt], (what + ": n").c_str());
  int64_t k = count(info[kAt], (what + ": k").c_str());
  if (n < 1 || k < 1) throw Napi::RangeError::New(env, what + ": n and k must be >= 1");
  return {static_cast<WeightKind>(kindArg), n, k};
}

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Context",
                       {
                           InstanceMethod("prepare", &Context::Prepare),
                           InstanceMethod("free", &Context::Free),
                           InstanceMethod("adopt", &Context::Adopt),
                           InstanceMethod("packedSize", &Context::PackedSize),
                           InstanceMethod("writePacked", &Context::WritePacked),
                           InstanceMethod("int8RowSums", &Context::Int8RowSums),
                           InstanceMethod("linearF32", &Context::LinearF32),
                           InstanceMethod("linearBf16", &Context::LinearBf16),
                           InstanceMethod("linearInt8", &Context::LinearInt8),
                           InstanceMethod("int8Sums", &Context::Int8Sums),
                           InstanceMethod("implInfo", &Context::ImplInfo),
                           InstanceMethod("numCached", &Context::NumCached),
                           InstanceMethod("rmsNorm", &Context::RmsNorm),
                           InstanceMethod("siluAndMul", &Context::SiluAndMul),
                           InstanceMethod("add", &Context::Add),
                           InstanceMethod("copyRows", &Context::CopyRows),
                           InstanceMethod("weightedScatterAdd", &Context::WeightedScatterAdd),
                       });
  }

  explicit Context(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Context>(info), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
    numThreads_ = info[0].As<Napi::Number>().Int32Value();
    if (numThreads_ < 1) throw Napi::RangeError::New(info.Env(), "numThreads must be >= 1");
  }

 private:
  dnnl::engine eng_;
  dnnl::stream strm_;
  int numThreads_ = 1;
  /** Cached primitives by shape and data types, each with its place in `order_` (most recently used first). */
  std::unordered_map<std::string, std::pair<matmul, std::list<std::string>::iterator>> cache_;
  std::list<std::string> order_;
  /** Scratch for converted activations and int32 sums, grown on demand. */
  std::vector<uint16_t> bf16Scratch_;
  std::vector<float> f32Scratch_;
  std::vector<uint8_t> u8Scratch_;
  std::vector<int32_t> s32Scratch_;
  std::vector<float> rowScale_;

  static dt srcType(WeightKind kind) {
    return kind == WeightKind::F32 ? dt::f32 : kind == WeightKind::Bf16 ? dt::bf16 : dt::u8;
  }
  static dt weiType(WeightKind kind) {
    return kind == WeightKind::F32 ? dt::f32 : kind == WeightKind::Bf16 ? dt::bf16 : dt::s8;
  }
  static dt dstType(WeightKind kind) { return kind == WeightKind::Int8 ? dt::s32 : dt::f32; }
  /** Bytes of one element of a product's weight and of its source (activations): the same for each kind. */
  static int64_t elementBytes(WeightKind kind) { return kind == WeightKind::F32 ? 4 : kind == WeightKind::Bf16 ? 2 : 1; }
  /** Bytes of one element of a product's destination (f32 or s32). */
  static constexpr int64_t DST_BYTES = 4;

  /** The primitive descriptor of an [m, k] × [k, n] product, weights in `wei` (format any to choose). */
  matmul::primitive_desc describe(WeightKind kind, int64_t m, int64_t n, int64_t k, const memory::desc& wei) {
    memory::desc src({m, k}, srcType(kind), tag::ab);
    memory::desc dst({m, n}, dstType(kind), tag::ab);
    return matmul::primitive_desc(matmul::desc(src, wei, dst), eng_);
  }

  /**
   * Threads for an [m, k] × [k, n] product: one per MIN_MACS_PER_THREAD multiply-adds or per
   * MIN_WEIGHT_BYTES_PER_THREAD bytes of weight, whichever gives more, up to numThreads_.
   */
  int threadsFor(WeightKind kind, int64_t m, int64_t n, int64_t k) const {
    const int64_t weightBytes = n * k * elementBytes(kind);
    int64_t t = std::max(m * n * k / MIN_MACS_PER_THREAD, weightBytes / MIN_WEIGHT_BYTES_PER_THREAD);
    return static_cast<int>(t < 1 ? 1 : t > numThreads_ ? numThreads_ : t);
  }

  /**
   * The cached primitive for `m` rows against weight `w` on `threads` threads, created on first use
   * (oneDNN splits the work for the OpenMP thread count in force when the primitive is created).
   */
  matmul& primitiveFor(const Weight& w, int64_t m, int threads) {
    std::string key = std::to_string(static_cast<int>(w.kind)) + ':' + std::to_string(m) + ':' +
                      std::to_string(w.n) + ':' + std::to_string(w.k) + ':' + std::to_string(threads);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
    if (cache_.size() >= MAX_CACHED) {
      cache_.erase(order_.back());
      order_.pop_back();
    }
    matmul prim(describe(w.kind, m, w.n, w.k, w.mem.get_desc()));
    order_.push_front(key);
    return cache_.emplace(key, std::make_pair(std::move(prim), order_.begin())).first->second.first;
  }

  Weight* weightArg(const Napi::Value& v) {
    if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "not a prepared weight");
    Weight* w = v.As<Napi::External<Weight>>().Data();
    if (w->freed) throw Napi::Error::New(v.Env(), "the weight was freed");
    return w;
  }

  Weight* weightArg(const Napi::Value& v, WeightKind kind, const char* what) {
    Weight* w = weightArg(v);
    if (w->kind != kind) throw Napi::TypeError::New(v.Env(), std::string(what) + ": the weight is of another kind");
    return w;
  }

  /**
   * Runs the product dst[m, n] = src[m, k] · w on this context's threads: up to EXACT_ROWS rows at once,
   * more as a multiple of ROW_STEP rows and the rest (see ROW_STEP).
   */
  void run(const Weight& w, int64_t m, void* src, void* dst) {
    const int64_t head = m <= EXACT_ROWS ? m : m - m % ROW_STEP;
    runRows(w, head, src, dst);
    if (head < m) {
      runRows(w, m - head, static_cast<char*>(src) + head * w.k * elementBytes(w.kind),
              static_cast<char*>(dst) + head * w.n * DST_BYTES);
    }
  }

  /** One product of exactly `m` rows on its cached primitive. */
  void runRows(const Weight& w, int64_t m, void* src, void* dst) {
    int threads = threadsFor(w.kind, m, w.n, w.k);
    omp_set_num_threads(threads);
    matmul& prim = primitiveFor(w, m, threads);
    memory srcMem({{m, w.k}, srcType(w.kind), tag::ab}, eng_, src);
    memory dstMem({{m, w.n}, dstType(w.kind), tag::ab}, eng_, dst);
    prim.execute(strm_, {{DNNL_ARG_SRC, srcMem}, {DNNL_ARG_WEIGHTS, w.mem}, {DNNL_ARG_DST, dstMem}});
    strm_.wait();
  }

  /**
   * prepare(kind, data, n, k) → weight. `data` [n, k] row-major: Float32Array (kind 0), Uint16Array of
   * bf16 bits (kind 1) or Int8Array (kind 2).
   */
  Napi::Value Prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Plain variables (not structured bindings, which C++17 lambdas and OpenMP clauses cannot capture).
    const WeightShape shape = shapeArgs(info, 0, 2, 3, "prepare");
    const WeightKind kind = shape.kind;
    const int64_t n = shape.n, k = shape.k;
    const napi_typedarray_type types[] = {napi_float32_array, napi_uint16_array, napi_int8_array};
    void* ptr = typedData(info[1], types[static_cast<int>(kind)], n * k, "prepare: data");
    auto w = std::make_unique<Weight>();
    w->kind = kind;
    w->n = n;
    w->k = k;
    try {
      memory::desc chosen = chosenLayout(kind, n, k);
      // The user's [n, k] row-major is oneDNN's [k, n] with k innermost: format tag `ba`.
      memory user({{k, n}, weiType(kind), tag::ba}, eng_, ptr);
      const size_t bytes = chosen.get_size();
      if (!w->map(bytes < 1 ? 1 : bytes)) {
        throw Napi::Error::New(env, "prepare: the system refused " + std::to_string(bytes) + " bytes for a weight");
      }
      w->eng = eng_;
      w->mem = memory(chosen, eng_, w->pages);
      dnnl::reorder(user, w->mem).execute(strm_, user, w->mem);
      strm_.wait();
    } catch (const dnnl::error& e) {
      throw Napi::Error::New(env, std::string("oneDNN could not prepare the weight: ") + e.what());
    }
    if (kind == WeightKind::Int8) {
      const int8_t* q = static_cast<const int8_t*>(ptr);
      w->wsum.assign(n, 0);
#pragma omp parallel for num_threads(numThreads_) if (n * k >= PARALLEL_MIN)
      for (int64_t j = 0; j < n; j++) {
        int32_t s = 0;
        for (int64_t c = 0; c < k; c++) s += q[j * k + c];
        w->wsum[j] = s;
      }
    }
    Weight* raw = w.release();
    return Napi::External<Weight>::New(env, raw, [](Napi::Env, Weight* p) { delete p; });
  }

  /** The layout oneDNN chooses for the weights of a [n, k] weight of `kind` (see Prepare). */
  memory::desc chosenLayout(WeightKind kind, int64_t n, int64_t k) {
    omp_set_num_threads(numThreads_);
    memory::desc any({k, n}, weiType(kind), tag::any);
    return describe(kind, LAYOUT_ROWS, n, k, any).weights_desc();
  }

  /**
   * adopt(file, offset, bytes, kind, n, k, wsum) → weight: a weight whose reordered bytes lie in a mapped
   * cache file at `offset` (as `writePacked` wrote them), used in place (no copy; the mapping lives as long
   * as any weight over it). The layout oneDNN chooses here must take exactly `bytes`, and `offset` must be
   * 64-byte aligned; int8 weights take their column sums `wsum` [n] (copied).
   */
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<Mapping> file = mappingArg(info[0], "adopt");
    int64_t offset = count(info[1], "adopt: offset");
    int64_t bytes = count(info[2], "adopt: bytes");
    const auto [kind, n, k] = shapeArgs(info, 3, 4, 5, "adopt");
    if (offset % 64 != 0) throw Napi::RangeError::New(env, "adopt: offset must be a multiple of 64");
    checkRange(env, *file, offset, bytes, "adopt");
    auto w = std::make_unique<Weight>();
    w->kind = kind;
    w->n = n;
    w->k = k;
    if (kind == WeightKind::Int8) {
      const int32_t* s = static_cast<int32_t*>(typedData(info[6], napi_int32_array, n, "adopt: wsum"));
      w->wsum.assign(s, s + n);
    }
    try {
      memory::desc chosen = chosenLayout(kind, n, k);
      if (chosen.get_size() != static_cast<size_t>(bytes)) {
        throw Napi::Error::New(env, "adopt: oneDNN lays this weight out in " + std::to_string(chosen.get_size()) +
                                        " bytes here, the cache holds " + std::to_string(bytes));
      }
      w->eng = eng_;
      w->file = file;
      w->pages = static_cast<uint8_t*>(file->base) + offset;
      w->mem = memory(chosen, eng_, w->pages);
    } catch (const dnnl::error& e) {
      throw Napi::Error::New(env, std::string("oneDNN could not adopt the weight: ") + e.what());
    }
    Weight* raw = w.release();
    return Napi::External<Weight>::New(env, raw, [](Napi::Env, Weight* p) { delete p; });
  }

  /** packedSize(kind, n, k): the bytes of oneDNN's layout for such a weight here. */
  Napi::Value PackedSize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const WeightShape shape = shapeArgs(info, 0, 1, 2, "packedSize");
    size_t bytes = 0;
    guard(env, [&] { bytes = chosenLayout(shape.kind, shape.n, shape.k).get_size(); });
    return Napi::Number::New(env, static_cast<double>(bytes));
  }

  /**
   * writePacked(w, fd, position) → checksum: writes the weight's reordered bytes to file descriptor `fd`
   * at `position` (pwrite, all of them or an error) and returns their sampledChecksum as 16 hex digits.
   */
  Napi::Value WritePacked(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Weight* w = weightArg(info[0]);
    int fd = info[1].As<Napi::Number>().Int32Value();
    int64_t position = count(info[2], "writePacked: position");
    const size_t bytes = w->mem.get_desc().get_size();
    const auto* p = static_cast<const uint8_t*>(w->pages);
    size_t done = 0;
    while (done < bytes) {
      ssize_t r = pwrite(fd, p + done, bytes - done, static_cast<off_t>(position + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        throw Napi::Error::New(env, std::string("writePacked: ") + (r < 0 ? std::strerror(errno) : "no progress"));
      }
      done += static_cast<size_t>(r);
    }
    return Napi::String::New(env, hex64(sampledChecksum(p, bytes)));
  }

  /** int8RowSums(w) → Int32Array [n]: an int8 weight's Σ_c w[j, c] (what `adopt` takes back). */
  Napi::Value Int8RowSums(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[0], WeightKind::Int8, "int8RowSums");
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), static_cast<size_t>(w->n));
    std::memcpy(out.Data(), w->wsum.data(), w->wsum.size() * sizeof(int32_t));
    return out;
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "free: not a prepared weight");
    Weight* w = info[0].As<Napi::External<Weight>>().Data();
    w->freed = true;
    w->release();
    return info.Env().Undefined();
  }

  /** linearF32(out, x, w, m): out[m, n] = x[m, k] · w[n, k]ᵀ in float32. */
  Napi::Value LinearF32(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[2], WeightKind::F32, "linearF32");
    int64_t m = count(info[3], "linearF32: m");
    float* out = static_cast<float*>(typedData(info[0], napi_float32_array, m * w->n, "linearF32: out"));
    float* x = static_cast<float*>(typedData(info[1], napi_float32_array, m * w->k, "linearF32: x"));
    if (m > 0) guard(info.Env(), [&] { run(*w, m, x, out); });
    return info.Env().Undefined();
  }

  /**
   * linearBf16(out, x, w, m, split): x rounded to bf16 (split = false), or split into a bf16 head and a
   * bf16 tail (x ≈ hi + lo to 2^-17 relative, split = true: float32-grade accuracy for twice the
   * arithmetic); products are exact in float32 and accumulate in float32.
   */
  Napi::Value LinearBf16(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[2], WeightKind::Bf16, "linearBf16");
    int64_t m = count(info[3], "linearBf16: m");
    float* o = static_cast<float*>(typedData(info[0], napi_float32_array, m * w->n, "linearBf16: out"));
    const float* xs = static_cast<float*>(typedData(info[1], napi_float32_array, m * w->k, "linearBf16: x"));
    bool split = info[4].As<Napi::Boolean>().Value();
    if (m == 0) return info.Env().Undefined();
    const int64_t k = w->k, n = w->n, rows = split ? 2 * m : m;
    if (bf16Scratch_.size() < static_cast<size_t>(rows * k)) bf16Scratch_.resize(rows * k);
    uint16_t* hi = bf16Scratch_.data();
    uint16_t* lo = hi + m * k;
    const int64_t total = m * k;
#pragma omp parallel for num_threads(numThreads_) if (total >= PARALLEL_MIN)
    for (int64_t i = 0; i < total; i++) {
      uint16_t h = toBf16(xs[i]);
      hi[i] = h;
      if (split) lo[i] = toBf16(xs[i] - fromBf16(h));
    }
    if (!split) {
      guard(info.Env(), [&] { run(*w, m, hi, o); });
      return info.Env().Undefined();
    }
    if (f32Scratch_.size() < static_cast<size_t>(rows * n)) f32Scratch_.resize(rows * n);
    float* tmp = f32Scratch_.data();
    guard(info.Env(), [&] { run(*w, rows, hi, tmp); });
    const int64_t mn = m * n;
#pragma omp parallel for num_threads(numThreads_) if (mn >= PARALLEL_MIN)
    for (int64_t i = 0; i < mn; i++) o[i] = tmp[i] + tmp[mn + i];
    return info.Env().Undefined();
  }

  /**
   * Quantizes x[m, k] into u8Scratch_ as int8 values shifted by +128: dynamic per-token symmetric
   * (static = false; rowScale_[i] = max|x[i, :]| / 127) or static per-tensor with `inv` and `offset`.
   */
  void quantizeRows(const float* x, int64_t m, int64_t k, bool isStatic, float inv, float offset) {
    if (u8Scratch_.size() < static_cast<size_t>(m * k)) u8Scratch_.resize(m * k);
    if (rowScale_.size() < static_cast<size_t>(m)) rowScale_.resize(m);
    uint8_t* q = u8Scratch_.data();
    float* scales = rowScale_.data();
#pragma omp parallel for num_threads(numThreads_) if (m * k >= PARALLEL_MIN)
    for (int64_t i = 0; i < m; i++) {
      const float* row = x + i * k;
      uint8_t* qrow = q + i * k;
      if (isStatic) {
        for (int64_t c = 0; c < k; c++) qrow[c] = static_cast<uint8_t>(quantize(row[c] * inv + offset, -128, 127) + 128);
        continue;
      }
      float amax = 0;
      bool nan = false;
      for (int64_t c = 0; c < k; c++) {
        float a = std::fabs(row[c]);
        if (a != a) nan = true;
        else if (a > amax) amax = a;
      }
      if (nan) amax = NAN;  // Math.max keeps a NaN: the row quantizes to zeros with a NaN scale
      float rowInv = amax > 0 ? 127.0f / amax : 0.0f;
      scales[i] = amax / 127.0f;
      for (int64_t c = 0; c < k; c++) qrow[c] = static_cast<uint8_t>(quantize(row[c] * rowInv, -127, 127) + 128);
    }
  }

  /** The int32 sums Σ_c xq[i, c] · w[j, c] into s32Scratch_ (undoing the +128 shift of the activations). */
  void int8Product(const Weight& w, int64_t m) {
    const int64_t n = w.n;
    if (s32Scratch_.size() < static_cast<size_t>(m * n)) s32Scratch_.resize(m * n);
    int32_t* acc = s32Scratch_.data();
    run(w, m, u8Scratch_.data(), acc);
    const int32_t* wsum = w.wsum.data();
#pragma omp parallel for num_threads(numThreads_) if (m * n >= PARALLEL_MIN)
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) {
        // Wrapping int32 arithmetic, as the kernels' (unsigned to stay defined in C++).
        acc[i * n + j] = static_cast<int32_t>(static_cast<uint32_t>(acc[i * n + j]) -
                                              128u * static_cast<uint32_t>(wsum[j]));
      }
    }
  }

  /**
   * linearInt8(out, x, w, m, scheme): scheme 0 dynamic (args 5: weightScale [n]); scheme 1 static (args
   * 5: inv = f32(1 / inputScale), 6: inputOffset, 7: quantBias [n] Int32Array, 8: deqScale [n]).
   */
  Napi::Value LinearInt8(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[2], WeightKind::Int8, "linearInt8");
    int64_t m = count(info[3], "linearInt8: m");
    const int64_t n = w->n;
    float* o = static_cast<float*>(typedData(info[0], napi_float32_array, m * n, "linearInt8: out"));
    const float* x = static_cast<float*>(typedData(info[1], napi_float32_array, m * w->k, "linearInt8: x"));
    bool isStatic = info[4].As<Napi::Number>().Int32Value() == 1;
    if (m == 0) return info.Env().Undefined();
    if (!isStatic) {
      const float* ws = static_cast<float*>(typedData(info[5], napi_float32_array, n, "linearInt8: weightScale"));
      quantizeRows(x, m, w->k, false, 0, 0);
      guard(info.Env(), [&] { int8Product(*w, m); });
      const int32_t* acc = s32Scratch_.data();
      const float* rs = rowScale_.data();
#pragma omp parallel for num_threads(numThreads_) if (m * n >= PARALLEL_MIN)
      for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) o[i * n + j] = (static_cast<float>(acc[i * n + j]) * rs[i]) * ws[j];
      }
      return info.Env().Undefined();
    }
    float inv = info[5].As<Napi::Number>().FloatValue();
    float offset = info[6].As<Napi::Number>().FloatValue();
    const int32_t* quantBias = static_cast<int32_t*>(typedData(info[7], napi_int32_array, n, "linearInt8: quantBias"));
    const float* deqScale = static_cast<float*>(typedData(info[8], napi_float32_array, n, "linearInt8: deqScale"));
    quantizeRows(x, m, w->k, true, inv, offset);
    guard(info.Env(), [&] { int8Product(*w, m); });
    const int32_t* acc = s32Scratch_.data();
#pragma omp parallel for num_threads(numThreads_) if (m * n >= PARALLEL_MIN)
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) {
        int32_t s = static_cast<int32_t>(static_cast<uint32_t>(acc[i * n + j]) + static_cast<uint32_t>(quantBias[j]));
        o[i * n + j] = static_cast<float>(s) * deqScale[j];
      }
    }
    return info.Env().Undefined();
  }

  /** int8Sums(acc, xq, w, m): acc[m, n] = Σ_c xq[m, k] · w[n, k] in int32, for tests of the int8 product. */
  Napi::Value Int8Sums(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[2]);
    int64_t m = count(info[3], "int8Sums: m");
    if (w->kind != WeightKind::Int8) throw Napi::TypeError::New(info.Env(), "int8Sums: not an int8 weight");
    auto* acc = static_cast<int32_t*>(typedData(info[0], napi_int32_array, m * w->n, "int8Sums: acc"));
    auto* xq = static_cast<const int8_t*>(typedData(info[1], napi_int8_array, m * w->k, "int8Sums: xq"));
    if (m == 0) return info.Env().Undefined();
    if (u8Scratch_.size() < static_cast<size_t>(m * w->k)) u8Scratch_.resize(m * w->k);
    for (int64_t i = 0; i < m * w->k; i++) u8Scratch_[i] = static_cast<uint8_t>(xq[i] + 128);
    guard(info.Env(), [&] { int8Product(*w, m); });
    std::memcpy(acc, s32Scratch_.data(), m * w->n * sizeof(int32_t));
    return info.Env().Undefined();
  }

  /** implInfo(w, m): the name of the oneDNN implementation that multiplies m rows by w. */
  Napi::Value ImplInfo(const Napi::CallbackInfo& info) {
    Weight* w = weightArg(info[0]);
    int64_t m = info[1].As<Napi::Number>().Int64Value();
    std::string s;
    guard(info.Env(), [&] { s = describe(w->kind, m, w->n, w->k, w->mem.get_desc()).impl_info_str(); });
    return Napi::String::New(info.Env(), s);
  }

  Napi::Value NumCached(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(cache_.size()));
  }

  // ---- The operators between the matrix products (see Duet's Kernels contract and reference twins) ----

  /** Threads for a loop of `total` elements: one per PARALLEL_MIN, up to numThreads_. */
  int loopThreads(int64_t total) const {
    int64_t t = total / PARALLEL_MIN;
    return static_cast<int>(t < 1 ? 1 : t > numThreads_ ? numThreads_ : t);
  }

  /**
   * rmsNorm(out, x, weight, m, d, eps): out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) · weight, in
   * double as the reference computes it (the squares are exact in double; only the summation order differs).
   */
  Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
    int64_t m = count(info[3], "rmsNorm: m");
    int64_t d = count(info[4], "rmsNorm: d");
    double eps = info[5].As<Napi::Number>().DoubleValue();
    float* out = static_cast<float*>(typedData(info[0], napi_float32_array, m * d, "rmsNorm: out"));
    const float* x = static_cast<float*>(typedData(info[1], napi_float32_array, m * d, "rmsNorm: x"));
    const float* wt = static_cast<float*>(typedData(info[2], napi_float32_array, d, "rmsNorm: weight"));
    if (m == 0 || d == 0) return info.Env().Undefined();
#pragma omp parallel for num_threads(loopThreads(m * d)) schedule(static)
    for (int64_t i = 0; i < m; i++) {
      const float* row = x + i * d;
      float* o = out + i * d;
      double ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t j = 0; j < d; j++) ss += static_cast<double>(row[j]) * row[j];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
#pragma omp simd
      for (int64_t j = 0; j < d; j++) o[j] = static_cast<float>(row[j] * inv * wt[j]);
    }
    return info.Env().Undefined();
  }

  /** siluAndMul(out, gateUp, m, d): out[i, j] = silu(gateUp[i, j]) · gateUp[i, d + j], in float32. */
  Napi::Value SiluAndMul(const Napi::CallbackInfo& info) {
    int64_t m = count(info[2], "siluAndMul: m");
    int64_t d = count(info[3], "siluAndMul: d");
    float* out = static_cast<float*>(typedData(info[0], napi_float32_array, m * d, "siluAndMul: out"));
    const float* gu = static_cast<float*>(typedData(info[1], napi_float32_array, 2 * m * d, "siluAndMul: gateUp"));
    if (m == 0 || d == 0) return info.Env().Undefined();
#pragma omp parallel for num_threads(loopThreads(m * d)) schedule(static)
    for (int64_t i = 0; i < m; i++) {
      const float* g = gu + i * 2 * d;
      float* o = out + i * d;
      for (int64_t j = 0; j < d; j++) {
        const float a = g[j];
        o[j] = (a / (1.0f + std::exp(-a))) * g[d + j];
      }
    }
    return info.Env().Undefined();
  }

  /** add(out, a, b, n): out[i] = a[i] + b[i] (a float32 sum, as the reference's once rounded). */
  Napi::Value Add(const Napi::CallbackInfo& info) {
    int64_t n = count(info[3], "add: n");
    float* out = static_cast<float*>(typedData(info[0], napi_float32_array, n, "add: out"));
    const float* a = static_cast<float*>(typedData(info[1], napi_float32_array, n, "add: a"));
    const float* b = static_cast<float*>(typedData(info[2], napi_float32_array, n, "add: b"));
#pragma omp parallel for simd num_threads(loopThreads(n)) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return info.Env().Undefined();
  }

  /**
   * Row index `i` of an optional row list (`rows` null: i), checked so that the row's `d` elements from
   * `offset` lie within `length` elements of stride `stride`: the start element, or -1 when outside.
   */
  static int64_t rowStart(const int32_t* rows, int64_t i, int64_t stride, int64_t offset, int64_t d, int64_t length) {
    int64_t r = rows ? rows[i] : i;
    if (r < 0) return -1;
    int64_t start = r * stride + offset;
    return start + d <= length ? start : -1;
  }

  /** A typed array's element count, after checking its type. */
  static int64_t lengthOf(const Napi::Value& v, napi_typedarray_type type, const char* what) {
    napi_typedarray_type t;
    size_t length = 0;
    if (!v.IsTypedArray() ||
        napi_get_typedarray_info(v.Env(), v, &t, &length, nullptr, nullptr, nullptr) != napi_ok || t != type) {
      throw Napi::TypeError::New(v.Env(), std::string(what) + ": wrong array type");
    }
    return static_cast<int64_t>(length);
  }

  /**
   * copyRows(dst, dstRows, dstStride, dstOffset, src, srcRows, srcStride, srcOffset, m, d): see Kernels.
   * Every row of both sides is checked against its array before anything is copied.
   */
  Napi::Value CopyRows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t dstStride = count(info[2], "copyRows: dstStride");
    int64_t dstOffset = count(info[3], "copyRows: dstOffset");
    int64_t srcStride = count(info[6], "copyRows: srcStride");
    int64_t srcOffset = count(info[7], "copyRows: srcOffset");
    int64_t m = count(info[8], "copyRows: m");
    int64_t d = count(info[9], "copyRows: d");
    float* dst = static_cast<float*>(typedData(info[0], napi_float32_array, 0, "copyRows: dst"));
    const float* src = static_cast<float*>(typedData(info[4], napi_float32_array, 0, "copyRows: src"));
    int64_t dstLen = lengthOf(info[0], napi_float32_array, "copyRows: dst");
    int64_t srcLen = lengthOf(info[4], napi_float32_array, "copyRows: src");
    const int32_t* dstRows =
        info[1].IsNull() ? nullptr : static_cast<int32_t*>(typedData(info[1], napi_int32_array, m, "copyRows: dstRows"));
    const int32_t* srcRows =
        info[5].IsNull() ? nullptr : static_cast<int32_t*>(typedData(info[5], napi_int32_array, m, "copyRows: srcRows"));
    if (m == 0 || d == 0) return env.Undefined();
    for (int64_t i = 0; i < m; i++) {
      if (rowStart(dstRows, i, dstStride, dstOffset, d, dstLen) < 0) {
        throw Napi::RangeError::New(env, "copyRows: destination row " + std::to_string(i) + " (" +
                                             std::to_string(dstRows ? dstRows[i] : i) + ") lies outside dst");
      }
      if (rowStart(srcRows, i, srcStride, srcOffset, d, srcLen) < 0) {
        throw Napi::RangeError::New(env, "copyRows: source row " + std::to_string(i) + " (" +
                                             std::to_string(srcRows ? srcRows[i] : i) + ") lies outside src");
      }
    }
#pragma omp parallel for num_threads(loopThreads(m * d)) schedule(static)
    for (int64_t i = 0; i < m; i++) {
      std::memmove(dst + rowStart(dstRows, i, dstStride, dstOffset, d, dstLen),
                   src + rowStart(srcRows, i, srcStride, srcOffset, d, srcLen), d * sizeof(float));
    }
    return env.Undefined();
  }

  /**
   * weightedScatterAdd(out, x, rows, weights, m, d): out[rows[i], :] += weights[i] · x[i, :] in order of i,
   * in double as the reference (the product of two floats is exact in double): the same bits.
   */
  Napi::Value WeightedScatterAdd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t m = count(info[4], "weightedScatterAdd: m");
    int64_t d = count(info[5], "weightedScatterAdd: d");
    float* out = static_cast<float*>(typedData(info[0], napi_float32_array, 0, "weightedScatterAdd: out"));
    int64_t outLen = lengthOf(info[0], napi_float32_array, "weightedScatterAdd: out");
    const float* x = static_cast<float*>(typedData(info[1], napi_float32_array, m * d, "weightedScatterAdd: x"));
    const int32_t* rows = static_cast<int32_t*>(typedData(info[2], napi_int32_array, m, "weightedScatterAdd: rows"));
    const float* wts = static_cast<float*>(typedData(info[3], napi_float32_array, m, "weightedScatterAdd: weights"));
    if (m == 0 || d == 0) return env.Undefined();
    for (int64_t i = 0; i < m; i++) {
      if (rowStart(rows, i, d, 0, d, outLen) < 0) {
        throw Napi::RangeError::New(env, "weightedScatterAdd: row " + std::to_string(rows[i]) + " (entry " +
                                             std::to_string(i) + ") lies outside out");
      }
    }
    // Columns split across threads: each column sees the rows in order of i, as the contract asks.
    const int threads = loopThreads(m * d);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t j0 = d * t / nt, j1 = d * (t + 1) / nt;
      for (int64_t i = 0; i < m; i++) {
        const double w = wts[i];
        float* o = out + static_cast<int64_t>(rows[i]) * d;
        const float* xi = x + i * d;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) o[j] = static_cast<float>(o[j] + w * xi[j]);
      }
    }
    return env.Undefined();
  }

  /** Runs `f`, turning a oneDNN error into a JS error that says so. */
  template <typename F>
  static void guard(Napi::Env env, F f) {
    try {
      f();
    } catch (const dnnl::error& e) {
      throw Napi::Error::New(env, std::string("oneDNN matmul failed: ") + e.what());
    }
  }
};

/**
 * mapFile(path) → file: maps a whole file private (copy-on-write: a write through `view` changes this
 * process's copy of a page, never the file) and enters the page cache's pages in one call
 * (MADV_POPULATE_READ, Linux 5.14; without it they fault in on first use), as llama.cpp maps its GGUF.
 * For `adopt`, `view` and `checksum`. Returns a string saying why when the file cannot be opened or mapped.
 */
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Napi::String::New(env, std::string("open: ") + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    std::string why = st.st_size <= 0 ? "the file is empty" : std::string("fstat: ") + std::strerror(errno);
    close(fd);
    return Napi::String::New(env, why);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return Napi::String::New(env, std::string("mmap: ") + std::strerror(err));
  madvise(p, size, MADV_POPULATE_READ_ADVICE);
  auto* holder = new std::shared_ptr<Mapping>(std::make_shared<Mapping>());
  (*holder)->base = p;
  (*holder)->size = size;
  return Napi::External<std::shared_ptr<Mapping>>::New(env, holder,
                                                       [](Napi::Env, std::shared_ptr<Mapping>* h) { delete h; });
}

/** mappedSize(file): the bytes mapped. */
Napi::Value MappedSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(mappingArg(info[0], "mappedSize")->size));
}

/** unmap(file): drops the JS handle's share of the mapping (weights over it keep theirs). */
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  mappingArg(info[0], "unmap").reset();
  return info.Env().Undefined();
}

/** checksum(file, offset, bytes): sampledChecksum of a byte range of a mapped file, as 16 hex digits. */
Napi::Value Checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MappedRange r = rangeArgs(info, "checksum");
  return Napi::String::New(env, hex64(sampledChecksum(static_cast<const uint8_t*>(r.file->base) + r.offset, r.bytes)));
}

/** checksumOf(bytes: Uint8Array): sampledChecksum of an array's bytes (as `checksum` of the same bytes). */
Napi::Value ChecksumOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "checksumOf: not a Uint8Array");
  auto* p = static_cast<const uint8_t*>(typedData(info[0], napi_uint8_array, 0, "checksumOf"));
  size_t n = info[0].As<Napi::Uint8Array>().ByteLength();
  return Napi::String::New(env, hex64(sampledChecksum(p, n)));
}

/**
 * view(file, offset, bytes) → ArrayBuffer: bytes [offset, offset + bytes) of a mapped file, without a
 * copy (an external ArrayBuffer; the mapping lives while the buffer does). Writes stay in this process.
 */
Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MappedRange r = rangeArgs(info, "view");
  auto* hold = new std::shared_ptr<Mapping>(r.file);
  return Napi::ArrayBuffer::New(
      env, static_cast<uint8_t*>(r.file->base) + r.offset, static_cast<size_t>(r.bytes),
      [](Napi::Env, void*, std::shared_ptr<Mapping>* h) { delete h; }, hold);
}

/** The oneDNN version and the instruction set its kernels use here. */
Napi::Value Describe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const dnnl_version_t* v = dnnl::version();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  const char* isa = "unknown";
  dnnl::cpu_isa e = dnnl::get_effective_cpu_isa();
  switch (e) {
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    default: break;
  }
  o.Set("isa", isa);
  // Exact int8 sums need a VNNI dot (the older u8·s8 pair instruction saturates at int16).
  o.Set("int8Exact", e == dnnl::cpu_isa::avx512_core_vnni || e == dnnl::cpu_isa::avx512_core_bf16 ||
                         e == dnnl::cpu_isa::avx512_core_amx || e == dnnl::cpu_isa::avx2_vnni);
  // oneDNN 2.6 multiplies bf16 from AVX-512 on (natively with AVX512_BF16, emulated before it).
  o.Set("bf16", e == dnnl::cpu_isa::avx512_core || e == dnnl::cpu_isa::avx512_core_vnni ||
                    e == dnnl::cpu_isa::avx512_core_bf16 || e == dnnl::cpu_isa::avx512_core_amx);
  o.Set("maxThreads", omp_get_max_threads());
  // When this addon was compiled: part of the weight cache's key, as another build may lay weights out
  // otherwise.
  o.Set("build", __DATE__ " " __TIME__);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // When the thread that loaded the addon ends (the engine thread of `duet serve`, a worker terminated
  // while it held weights), its OpenMP pool threads were left behind and crashed in libgomp once the
  // thread was gone. Ending the pool while the thread is still alive lets them exit cleanly.
  napi_add_env_cleanup_hook(env, [](void*) { omp_pause_resource_all(omp_pause_hard); }, nullptr);
  exports.Set("Context", Context::Define(env));
  exports.Set("describe", Napi::Function::New(env, Describe));
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  exports.Set("mappedSize", Napi::Function::New(env, MappedSize));
  exports.Set("unmap", Napi::Function::New(env, Unmap));
  exports.Set("checksum", Napi::Function::New(env, Checksum));
  exports.Set("checksumOf", Napi::Function::New(env, ChecksumOf));
  exports.Set("view", Napi::Function::New(env, View));
  return exports;
}

}  // namespace

NODE_API_MODULE(duet_onednn, Init)
