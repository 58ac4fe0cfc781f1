/* _qkern: the Python binding of qkern's public C API (qkern.h, qkern_cuda.h), through nanobind.
 *
 * This layer is deliberately thin: it converts arguments, releases the GIL around every call into
 * the library, and turns a failed call into a Python exception carrying qk_last_error(). Shapes,
 * dtypes and devices are decided in python/qkern/_ops.py; what reaches here is re-checked where a
 * wrong value could make the library read or write outside an array. */
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qkern.h"
#include "qkern_cuda.h"

namespace nb = nanobind;

namespace {

/* A failed call: qkern's status and message, raised as the Python exception the status calls for. */
struct Failure {
    qk_status status;
    std::string message;
};

[[noreturn]] void fail(qk_status st, const std::string &message) {
    throw Failure{st, message.empty() ? std::string(qk_status_string(st)) : message};
}

/* Argument errors are the caller's to fix (ValueError); file errors are OSError; the rest (no device,
 * out of memory, unsupported, a backend's failure) are the device's (RuntimeError). */
PyObject *exception_for(qk_status st) {
    switch (st) {
    case QK_ERR_INVALID_ARG:
    case QK_ERR_TYPE:
    case QK_ERR_SHAPE:
    case QK_ERR_VALUE:
    case QK_ERR_BUFFER:
    case QK_ERR_NEEDS_IMATRIX:
    case QK_ERR_FORMAT: return PyExc_ValueError;
    case QK_ERR_IO: return PyExc_OSError;
    default: return PyExc_RuntimeError;
    }
}

/* One qk_context. Calls on it are serialized: the library keeps its last error per context, and
 * the GIL is released during a call, so two Python threads could otherwise interleave on it. */
struct Context {
    qk_context *ctx = nullptr;
    std::mutex mu;

    Context(const std::string &device, int n_threads) {
        qk_context_params p = qk_context_default_params();
        p.device = device.empty() || device == "auto" ? nullptr : device.c_str();
        p.n_threads = n_threads;
        p.notice = &Context::notice;
        qk_status st;
        std::string msg;
        {
            nb::gil_scoped_release unlocked;
            st = qk_context_create(&p, &ctx);
            if (st != QK_OK) msg = qk_last_error(nullptr);
        }
        if (st != QK_OK) fail(st, msg);
    }
    ~Context() { qk_context_destroy(ctx); }
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    /* A cpu fallback is worth knowing about (it can be orders of magnitude slower): a RuntimeWarning. */
    static void notice(void *, const char *line) {
        nb::gil_scoped_acquire locked;
        if (PyErr_WarnEx(PyExc_RuntimeWarning, line, 1) != 0) PyErr_Clear();
    }

    /* Runs f(ctx) without the GIL, holding the context; raises on failure. */
    template <class F> void call(F &&f) {
        qk_status st;
        std::string msg;
        {
            nb::gil_scoped_release unlocked;
            std::lock_guard<std::mutex> held(mu);
            st = f(ctx);
            if (st != QK_OK) msg = qk_last_error(ctx);
        }
        if (st != QK_OK) fail(st, msg);
    }

    nb::tuple device() const {
        qk_device_info d;
        qk_status st = qk_context_device(ctx, &d);
        if (st != QK_OK) fail(st, qk_last_error(ctx));
        return nb::make_tuple(std::string(d.id), std::string(d.name), (int)d.kind, d.memory_bytes, d.compute_units);
    }
};

[[noreturn]] void bad_arg(const std::string &what) { fail(QK_ERR_INVALID_ARG, what); }

using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<>;

template <class A> bool is_contiguous(const A &a) {
    if (a.size() == 0) return true; /* numpy gives an empty array arbitrary strides */
    int64_t expect = 1;
    for (size_t i = a.ndim(); i-- > 0;) {
        if (a.shape(i) != 1 && a.stride(i) != expect) return false;
        expect *= (int64_t)a.shape(i);
    }
    return true;
}

/* The qk_type of a float array's elements (F32, F16, BF16), or -1. */
template <class A> int float_type(const A &a) {
    nb::dlpack::dtype d = a.dtype();
    if (d.lanes != 1) return -1;
    if (d.code == (uint8_t)nb::dlpack::dtype_code::Float && d.bits == 32) return QK_TYPE_F32;
    if (d.code == (uint8_t)nb::dlpack::dtype_code::Float && d.bits == 16) return QK_TYPE_F16;
    if (d.code == (uint8_t)nb::dlpack::dtype_code::Bfloat && d.bits == 16) return QK_TYPE_BF16;
    return -1;
}

template <class A> bool is_u8(const A &a) {
    nb::dlpack::dtype d = a.dtype();
    return d.lanes == 1 && d.bits == 8 && d.code == (uint8_t)nb::dlpack::dtype_code::UInt;
}

template <class A> size_t bytes_of(const A &a) { return a.size() * ((a.dtype().bits + 7) / 8); }

/* Where an array lives: host memory (0) or CUDA memory (1); anything else is refused. */
template <class A> int placement(const A &a, const char *name) {
    if (a.device_type() == nb::device::cpu::value) return 0;
    if (a.device_type() == nb::device::cuda::value) return 1;
    bad_arg(std::string(name) + ": only host (CPU) and CUDA arrays are supported");
}

template <class A> void require_contiguous(const A &a, const char *name) {
    if (!is_contiguous(a))
        bad_arg(std::string(name) + ": the array must be C-contiguous (qkern does not copy its operands)");
}

template <class A> qk_mem mem_of(const A &a, int on_device) {
    void *p = const_cast<void *>(static_cast<const void *>(a.data()));
    return on_device ? qk_dev(p, bytes_of(a)) : qk_host(p, bytes_of(a));
}

/* Both arrays in one place (the host, or the same CUDA device); returns which. */
template <class A, class B> int same_placement(const A &a, const char *an, const B &b, const char *bn) {
    int pa = placement(a, an), pb = placement(b, bn);
    if (pa != pb || (pa && a.device_id() != b.device_id()))
        bad_arg(std::string(an) + " and " + bn + " must be on the same device");
    return pa;
}

void quantize(Context &c, int type, const InArray &src, const OutArray &dst, int64_t rows, int64_t cols,
              const std::optional<InArray> &imatrix, unsigned flags, uintptr_t stream) {
    require_contiguous(src, "array");
    require_contiguous(dst, "blocks");
    int src_type = float_type(src);
    if (src_type < 0) bad_arg("array: the values must be float32, float16 or bfloat16");
    if (!is_u8(dst)) bad_arg("blocks: the output must be uint8");
    if ((int64_t)src.size() != rows * cols) bad_arg("array: its size is not rows * cols");
    int dev = same_placement(src, "array", dst, "blocks");
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = (qk_type)type;
    d.src_type = (qk_type)src_type;
    d.rows = rows;
    d.cols = cols;
    d.src = mem_of(src, dev);
    d.dst = mem_of(dst, dev);
    d.flags = flags;
    if (imatrix) {
        require_contiguous(*imatrix, "imatrix");
        if (float_type(*imatrix) != QK_TYPE_F32) bad_arg("imatrix: the weights must be float32");
        if (placement(*imatrix, "imatrix") != dev) bad_arg("imatrix: must be where the array is");
        d.imatrix = static_cast<const float *>(imatrix->data());
        d.imatrix_len = (int64_t)imatrix->size();
    }
    c.call([&](qk_context *ctx) {
        return dev ? qk_cuda_quantize_async(ctx, &d, (qk_cuda_stream)stream) : qk_quantize(ctx, &d);
    });
}

void dequantize(Context &c, int type, const InArray &src, const OutArray &dst, int64_t rows, int64_t cols,
                uintptr_t stream) {
    require_contiguous(src, "blocks");
    require_contiguous(dst, "out");
    int dst_type = float_type(dst);
    if (dst_type < 0) bad_arg("out: the values must be float32, float16 or bfloat16");
    if (!is_u8(src)) bad_arg("blocks: must be uint8");
    if ((int64_t)dst.size() != rows * cols) bad_arg("out: its size is not rows * cols");
    int dev = same_placement(src, "blocks", dst, "out");
    qk_dequantize_desc d = qk_dequantize_default_desc();
    d.type = (qk_type)type;
    d.dst_type = (qk_type)dst_type;
    d.rows = rows;
    d.cols = cols;
    d.src = mem_of(src, dev);
    d.dst = mem_of(dst, dev);
    c.call([&](qk_context *ctx) {
        return dev ? qk_cuda_dequantize_async(ctx, &d, (qk_cuda_stream)stream) : qk_dequantize(ctx, &d);
    });
}

/* An operand of the MoE calls: its address (0 for none) and its bytes. */
qk_mem operand_mem(uintptr_t address, size_t bytes, bool on_device) {
    void *p = reinterpret_cast<void *>(address);
    if (!p) return qk_mem{};
    return on_device ? qk_dev(p, bytes) : qk_host(p, bytes);
}

enum MoeKind { MOE_MATMUL = 0, MOE_GATE_UP = 1, MOE_WEIGHTED_SUM = 2 };

/* The MoE calls take each operand as an address and a byte count, plain ints: they sit on a decode
 * step's path, where importing six operands through DLPack, or a tuple per operand, would cost more
 * host time than the kernels take. The Python layer has checked dtypes, shapes, contiguity and
 * device; the library checks every byte count against the shapes, so a wrong count is an error,
 * not an overrun.
 *
 * On the device (on_device: qkern_cuda.h's asynchronous calls on `stream`), a workspace smaller than
 * the call needs (qk_moe_workspace_size, asked under the same lock) enqueues nothing: the call
 * returns the bytes it needs, for the caller to allocate through torch and call again. Otherwise
 * it returns 0, so a caller that holds its workspace makes one call per step. */
size_t moe(Context &c, int kind, int type, int x_type, int64_t n_expert, int64_t m, int64_t k, int64_t n_tokens,
           int64_t n_used, bool x_per_slot, int precision, uintptr_t w, size_t w_bytes, uintptr_t w_up,
           size_t w_up_bytes, uintptr_t x, size_t x_bytes, uintptr_t ids, size_t ids_bytes, uintptr_t router,
           size_t router_bytes, uintptr_t y, size_t y_bytes, uintptr_t workspace, size_t workspace_bytes,
           bool on_device, uintptr_t stream) {
    if (kind != MOE_MATMUL && kind != MOE_GATE_UP && kind != MOE_WEIGHTED_SUM) bad_arg("moe: unknown kind");
    qk_moe_desc d = qk_moe_default_desc();
    d.type = (qk_type)type;
    d.x_type = (qk_type)x_type;
    d.n_expert = n_expert;
    d.m = m;
    d.k = k;
    d.n_tokens = n_tokens;
    d.n_used = n_used;
    d.x_per_slot = x_per_slot ? 1 : 0;
    d.precision = (qk_moe_precision)precision;
    d.w = operand_mem(w, w_bytes, on_device);
    d.w_up = operand_mem(w_up, w_up_bytes, on_device);
    d.x = operand_mem(x, x_bytes, on_device);
    d.ids = operand_mem(ids, ids_bytes, on_device);
    d.router = operand_mem(router, router_bytes, on_device);
    d.y = operand_mem(y, y_bytes, on_device);
    d.workspace = operand_mem(workspace, workspace_bytes, on_device);
    size_t needed = 0;
    c.call([&](qk_context *ctx) {
        if (!on_device) {
            switch (kind) {
            case MOE_MATMUL: return qk_moe_matmul(ctx, &d);
            case MOE_GATE_UP: return qk_moe_gate_up(ctx, &d);
            default: return qk_moe_weighted_sum(ctx, &d);
            }
        }
        size_t bytes = 0;
        qk_status st = qk_moe_workspace_size(ctx, &d, &bytes);
        if (st != QK_OK) return st;
        if (bytes > workspace_bytes) {
            needed = bytes;
            return QK_OK;
        }
        qk_cuda_stream s = (qk_cuda_stream)stream;
        switch (kind) {
        case MOE_MATMUL: return qk_cuda_moe_matmul_async(ctx, &d, s);
        case MOE_GATE_UP: return qk_cuda_moe_gate_up_async(ctx, &d, s);
        default: return qk_cuda_moe_weighted_sum_async(ctx, &d, s);
        }
    });
    return needed;
}

/* The progress callback and Ctrl-C during a model quantization. Both run on the calling thread,
 * with the GIL released around them; a Python exception (from the callback, or a signal's) stops
 * the run through the library's cancel hook and is raised once the call has returned. */
struct ModelRun {
    nb::object progress;
    std::optional<nb::python_error> error;

    static void on_progress(void *user, const qk_model_progress *p) {
        auto *run = static_cast<ModelRun *>(user);
        nb::gil_scoped_acquire locked;
        if (run->error || !run->progress.is_valid() || run->progress.is_none()) return;
        try {
            run->progress(p->tensor, p->n_tensors, p->name ? p->name : "", p->bytes_done, p->bytes_total, p->seconds,
                          p->tensor_done != 0);
        } catch (nb::python_error &e) {
            run->error.emplace(std::move(e));
        }
    }
    static int on_cancel(void *user) {
        auto *run = static_cast<ModelRun *>(user);
        nb::gil_scoped_acquire locked;
        if (!run->error && PyErr_CheckSignals() != 0) run->error.emplace();
        return run->error ? 1 : 0;
    }
};

nb::dict tensor_dict(const qk_model_tensor *t) {
    nb::dict d;
    d["name"] = std::string(t->name);
    d["src_type"] = qk_type_name(t->src_type) ? qk_type_name(t->src_type) : "?";
    d["type"] = qk_type_name(t->type) ? qk_type_name(t->type) : "?";
    nb::list ne;
    for (int i = 0; i < t->n_dims; i++) ne.append(t->ne[i]);
    d["ne"] = nb::tuple(ne);
    d["src_bytes"] = t->src_bytes;
    d["bytes"] = t->bytes;
    d["reason"] = qk_plan_reason_name(t->reason);
    d["converted"] = t->converted != 0;
    d["imatrix"] = t->imatrix != 0;
    d["split"] = t->split;
    d["seconds"] = t->seconds;
    d["rmse"] = t->rmse;
    d["rel_rmse"] = t->rel_rmse;
    return d;
}

nb::dict totals_dict(const qk_model_totals *t) {
    nb::dict d;
    d["n_tensors"] = t->n_tensors;
    d["n_splits"] = t->n_splits;
    d["in_bytes"] = t->in_bytes;
    d["out_bytes"] = t->out_bytes;
    d["in_weights"] = t->in_weights;
    d["quantized_weights"] = t->quantized_weights;
    d["out_file_bytes"] = t->out_file_bytes;
    d["seconds"] = t->seconds;
    d["imatrix_entries"] = t->imatrix_entries;
    return d;
}

/* The options of qk_model_quantize_desc the Python API offers, by name. */
struct ModelOptions {
    std::string input, output;
    std::optional<std::string> preset, imatrix;
    std::vector<std::pair<std::string, int>> overrides;
    int output_tensor_type = -1, token_embedding_type = -1;
    bool pure = false, leave_output_tensor = false, allow_requantize = false, keep_split = false;
    bool dry_run = false, measure_error = false;
    uint64_t split_max_bytes = 0;
    size_t chunk_bytes = 0;
};

nb::tuple model_quantize(Context &c, const ModelOptions &o, nb::object progress) {
    std::vector<qk_tensor_type_override> overrides;
    for (const auto &ov : o.overrides) overrides.push_back({ov.first.c_str(), (qk_type)ov.second});
    qk_model_quantize_desc d = qk_model_quantize_default_desc();
    d.input = o.input.c_str();
    d.output = o.output.c_str();
    d.preset = o.preset ? o.preset->c_str() : nullptr;
    d.overrides = overrides.empty() ? nullptr : overrides.data();
    d.n_overrides = overrides.size();
    d.output_tensor_type = o.output_tensor_type;
    d.token_embedding_type = o.token_embedding_type;
    d.pure = o.pure;
    d.leave_output_tensor = o.leave_output_tensor;
    d.allow_requantize = o.allow_requantize;
    d.imatrix = o.imatrix ? o.imatrix->c_str() : nullptr;
    d.keep_split = o.keep_split;
    d.split_max_bytes = o.split_max_bytes;
    d.dry_run = o.dry_run;
    d.measure_error = o.measure_error;
    d.chunk_bytes = o.chunk_bytes;
    ModelRun run{std::move(progress), std::nullopt};
    d.progress = &ModelRun::on_progress;
    d.cancel = &ModelRun::on_cancel;
    d.user = &run;

    qk_model_result *r = nullptr;
    qk_status st;
    std::string msg;
    {
        nb::gil_scoped_release unlocked;
        std::lock_guard<std::mutex> held(c.mu);
        st = qk_model_quantize(c.ctx, &d, &r);
        if (st != QK_OK) msg = qk_last_error(c.ctx);
    }
    if (run.error) {
        qk_model_result_free(r);
        throw nb::python_error(*run.error);
    }
    if (st != QK_OK) fail(st, msg);
    nb::list tensors;
    for (size_t i = 0; i < qk_model_result_count(r); i++) tensors.append(tensor_dict(qk_model_result_tensor(r, i)));
    nb::dict totals = totals_dict(qk_model_result_totals(r));
    std::string notes = qk_model_result_notes(r);
    qk_model_result_free(r);
    return nb::make_tuple(tensors, totals, notes);
}

int type_from_name(const std::string &name) {
    qk_type t;
    if (qk_type_from_name(name.c_str(), &t) != QK_OK)
        fail(QK_ERR_TYPE, std::string(qk_status_string(QK_ERR_TYPE)) + ": '" + name + "'");
    return (int)t;
}

std::vector<nb::tuple> formats() {
    std::vector<nb::tuple> out;
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info t;
        if (qk_type_get_info(qk_type_at(i), &t) != QK_OK) continue;
        out.push_back(nb::make_tuple(std::string(t.name), (int)t.type, t.block_elems, t.block_bytes, t.bits_per_weight,
                                     t.is_quantized != 0, t.uses_imatrix != 0, t.needs_imatrix != 0));
    }
    return out;
}

std::vector<nb::tuple> devices() {
    std::vector<nb::tuple> out;
    for (int i = 0; i < qk_device_count(); i++) {
        qk_device_info d;
        if (qk_device_get(i, &d) != QK_OK) continue;
        out.push_back(nb::make_tuple(std::string(d.id), std::string(d.name), (int)d.kind, d.memory_bytes,
                                     d.compute_units, qk_device_is_software(i) != 0));
    }
    return out;
}

std::vector<nb::tuple> presets() {
    std::vector<nb::tuple> out;
    for (size_t i = 0; i < qk_preset_count(); i++) {
        const qk_preset *p = qk_preset_at(i);
        out.push_back(nb::make_tuple(std::string(p->name), p->id, qk_type_name(p->default_type),
                                     std::string(p->help ? p->help : ""),
                                     p->alias_of ? nb::object(nb::str(p->alias_of)) : nb::none()));
    }
    return out;
}

} // namespace

NB_MODULE(_qkern, m) {
    m.doc() = "qkern's C API for the qkern package (use `import qkern`, not this module)";

    nb::register_exception_translator([](const std::exception_ptr &p, void *) {
        try {
            std::rethrow_exception(p);
        } catch (const Failure &f) {
            PyErr_SetString(exception_for(f.status), f.message.c_str());
        }
    });

    nb::class_<Context>(m, "Context")
        .def(nb::init<const std::string &, int>(), nb::arg("device"), nb::arg("n_threads") = 0)
        .def("device", &Context::device, "(id, name, kind, memory_bytes, compute_units) of the context's device");

    nb::class_<ModelOptions>(m, "ModelOptions")
        .def(nb::init<>())
        .def_rw("input", &ModelOptions::input)
        .def_rw("output", &ModelOptions::output)
        .def_rw("preset", &ModelOptions::preset)
        .def_rw("imatrix", &ModelOptions::imatrix)
        .def_rw("overrides", &ModelOptions::overrides)
        .def_rw("output_tensor_type", &ModelOptions::output_tensor_type)
        .def_rw("token_embedding_type", &ModelOptions::token_embedding_type)
        .def_rw("pure", &ModelOptions::pure)
        .def_rw("leave_output_tensor", &ModelOptions::leave_output_tensor)
        .def_rw("allow_requantize", &ModelOptions::allow_requantize)
        .def_rw("keep_split", &ModelOptions::keep_split)
        .def_rw("split_max_bytes", &ModelOptions::split_max_bytes)
        .def_rw("dry_run", &ModelOptions::dry_run)
        .def_rw("measure_error", &ModelOptions::measure_error)
        .def_rw("chunk_bytes", &ModelOptions::chunk_bytes);

    m.def("version", []() { return std::string(qk_version_string()); });
    m.def("formats", &formats);
    m.def("devices", &devices);
    m.def("presets", &presets);
    m.def("type_from_name", &type_from_name, nb::arg("name"));
    m.def("row_bytes", [](int type, int64_t cols) { return qk_type_row_bytes(type, cols); });
    m.def("quantize", &quantize, nb::arg("ctx"), nb::arg("type"), nb::arg("src").noconvert(),
          nb::arg("dst").noconvert(), nb::arg("rows"), nb::arg("cols"), nb::arg("imatrix").noconvert().none(),
          nb::arg("flags"), nb::arg("stream"));
    m.def("dequantize", &dequantize, nb::arg("ctx"), nb::arg("type"), nb::arg("src").noconvert(),
          nb::arg("dst").noconvert(), nb::arg("rows"), nb::arg("cols"), nb::arg("stream"));
    m.def("moe", &moe);
    m.def("model_quantize", &model_quantize, nb::arg("ctx"), nb::arg("options"), nb::arg("progress").none());
}
