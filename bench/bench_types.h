// The benchmark argument list shared by the benchmark programs: every quantized type's id.
#ifndef QK_BENCH_TYPES_H
#define QK_BENCH_TYPES_H

#include <benchmark/benchmark.h>

#include "qkern.h"

inline void quantized_types(benchmark::internal::Benchmark *b) {
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        if (ti.is_quantized) b->Arg(ti.type);
    }
}

#endif
