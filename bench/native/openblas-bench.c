// Native reference for bench/kernels.ts: times OpenBLAS sgemm on the same shapes as the wasm GEMM
// (out[M,N] = x[M,K] · w[N,K]^T, row-major), and a streaming read of memory with T threads.
// Threads for sgemm come from OPENBLAS_NUM_THREADS. Prints one line: seconds per call.
//
//   openblas-bench gemm M N K COPIES MIN_SECONDS   (rotates over COPIES weight matrices, as the wasm bench)
//   openblas-bench stream BYTES_PER_THREAD THREADS
//   openblas-bench corename                        (the kernel OpenBLAS picked for this CPU)
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *filled(size_t n, float v) {
  float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
  for (size_t i = 0; i < n; i++) p[i] = v * (float)((i % 7) + 1);
  return p;
}

static int gemm(int m, int n, int k, int copies, double min_seconds) {
  float *x = filled((size_t)m * k, 0.01f);
  float *out = filled((size_t)m * n, 0.0f);
  float **w = malloc(sizeof(float *) * copies);
  for (int c = 0; c < copies; c++) w[c] = filled((size_t)n * k, 0.001f);
  for (int c = 0; c < copies; c++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w[c], k, 0.0f, out, n);
  long calls = 0;
  double t0 = now(), t;
  do {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w[calls % copies], k, 0.0f, out, n);
    calls++;
    t = now() - t0;
  } while (t < min_seconds || calls < 3);
  printf("%.9f\n", t / calls);
  return 0;
}

struct stream_arg {
  const float *p;
  size_t n;
  float sum;
};

// Reads the thread's range as 4 interleaved sequential streams (its quarters), like the wasm stream.
static void *stream_one(void *v) {
  struct stream_arg *a = v;
  size_t q = a->n / 4;
  const float *p0 = a->p, *p1 = a->p + q, *p2 = a->p + 2 * q, *p3 = a->p + 3 * q;
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  for (size_t i = 0; i + 8 <= q; i += 8) {
    s0 += p0[i]; s1 += p1[i]; s2 += p2[i]; s3 += p3[i];
    s4 += p0[i + 4]; s5 += p1[i + 4]; s6 += p2[i + 4]; s7 += p3[i + 4];
  }
  a->sum = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
  return NULL;
}

static int stream(size_t bytes, int threads) {
  size_t n = bytes / sizeof(float);
  float *buf = filled(n * threads, 1.0f);
  pthread_t tid[64];
  struct stream_arg args[64];
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now();
    for (int t = 0; t < threads; t++) {
      args[t] = (struct stream_arg){buf + (size_t)t * n, n, 0};
      pthread_create(&tid[t], NULL, stream_one, &args[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("%.9f\n", best);
  return 0;
}

char *openblas_get_corename(void);

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "corename") == 0) {
    printf("%s\n", openblas_get_corename());
    return 0;
  }
  if (argc == 7 && strcmp(argv[1], "gemm") == 0)
    return gemm(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]));
  if (argc == 4 && strcmp(argv[1], "stream") == 0) {
    int threads = atoi(argv[3]);
    if (threads < 1 || threads > 64) return 2;
    return stream((size_t)atoll(argv[2]), threads);
  }
  fprintf(stderr, "usage: openblas-bench gemm M N K COPIES MIN_SECONDS | stream BYTES_PER_THREAD THREADS\n");
  return 2;
}
