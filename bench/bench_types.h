// The benchmark argument lists shared by the benchmark programs: every quantized type's id,
// alone or paired with each of a list of second arguments.
#ifndef QK_BENCH_TYPES_H
#define QK_BENCH_TYPES_H

#include <benchmark/benchmark.h>

#include <initializer_list>

#include "qkern.h"

inline void quantized_types(benchmark::internal::Benchmark *b) {
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        if (ti.is_quantized) b->Arg(ti.type);
    }
}

inline void with_types(benchmark::internal::Benchmark *b, std::initializer_list<int64_t> second) {
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        if (ti.is_quantized)
            for (int64_t v : second) b->Args({ti.type, v});
    }
}

#endif
