// A userspace analogue of rcuscale's kfree test on one CPU: SLUB-like kmalloc fast path from
// per-size slab pages (free pointer at offset 0), pointers stored into 4 KB bulk pages
// (kvfree_call_rcu), and, many batches later (objects cold), a kfree_bulk()-like pass that
// writes each object's free pointer and returns emptied pages LIFO (discard_slab()).
// Prints ns per object of the allocation side and of the free side.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define BULK_ENTR ((PAGE - 16) / 8)
typedef struct { void *freelist; int inuse, objects; int pad[12]; } meta_t; // struct page-like, 64 B

static char *arena; static meta_t *meta; static long npages;
static long *stack; static long top;                  // free pages, LIFO
typedef struct { int size; char *freelist; } cache_t;

static inline long pidx(void *p) { return ((char *)p - arena) / PAGE; }
static char *new_slab(cache_t *c) {
    if (top == 0) { fprintf(stderr, "arena exhausted\n"); exit(1); }
    long i = stack[--top]; char *p = arena + i * PAGE; int n = PAGE / c->size;
    for (int k = 0; k < n - 1; k++) *(void **)(p + k * c->size) = p + (k + 1) * c->size;
    *(void **)(p + (n - 1) * c->size) = NULL;
    meta[i].objects = n; meta[i].inuse = n; return p;
}
static inline void *kmalloc(cache_t *c) {
    char *o = c->freelist;
    if (!o) o = new_slab(c);
    c->freelist = *(void **)o;
    return o;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }

int main(int argc, char **argv) {
    int mixed = argc > 1 && !strcmp(argv[1], "mixed");
    long total = argc > 2 ? atol(argv[2]) : 100000000L;
    long batch = 1000000, delay = argc > 3 ? atol(argv[3]) : 16;
    npages = 1L << 20;                                   // 4 GB arena
    arena = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    meta = calloc(npages, sizeof(meta_t)); stack = malloc(npages * sizeof(long));
    for (long i = npages - 1; i >= 0; i--) stack[top++] = i;
    cache_t caches[4] = {{32}, {64}, {96}, {128}};
    int ncaches = mixed ? 4 : 1;
    long nb = batch / BULK_ENTR + 2, qlen = delay + 2;
    void ***q = malloc(qlen * sizeof(void **)); long *qn = malloc(qlen * sizeof(long));
    for (long i = 0; i < qlen; i++) q[i] = malloc(nb * PAGE);   // bulk pages, one block per batch
    double ta = 0, tf = 0; long head = 0, tail = 0, done = 0, freed = 0;
    while (done < total) {
        double t0 = now(); void **b = q[tail]; long n = 0;
        for (long k = 0; k < batch; k++) b[n++] = kmalloc(&caches[k % ncaches]);
        qn[tail] = n; tail = (tail + 1) % qlen; done += n; ta += now() - t0;
        if ((tail - head + qlen) % qlen > delay) {       // the oldest batch's grace period is over
            double t1 = now(); void **f = q[head]; long m = qn[head];
            for (long k = 0; k < m; k++) {             // kfree_bulk(): one free-pointer write per object
                char *o = f[k]; long i = pidx(o);
                *(void **)o = meta[i].freelist; meta[i].freelist = o;
                if (--meta[i].inuse == 0) { meta[i].freelist = NULL; stack[top++] = i; }
            }
            head = (head + 1) % qlen; freed += m; tf += now() - t1;
        }
    }
    printf("%s: %.1f ns/object allocation side, %.1f ns/object free side (%ld allocated, %ld freed cold, %ld batches in flight)\n",
           mixed ? "kmalloc-32/64/96/128 round robin" : "kmalloc-32", ta / done, tf / freed, done, freed, delay);
    return 0;
}
