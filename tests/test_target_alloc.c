/* The target size allocation solver (issue 17): one option per tensor within a byte budget at the
 * least total error. Instances are random (the seed is printed; QK_TEST_SEED replays one), options
 * are listed in random order, and choice[] is poisoned before each call.
 *
 * What is asserted about quality, and why (exact optimality of a multiple-choice knapsack is
 * NP-hard, so a bound is what this method promises):
 * - always: the error is no lower than the brute-force optimum (else the brute force or the
 *   feasibility check is wrong), and no single-tensor upgrade that lowers the error still fits in
 *   the bytes left (the greedy fill ran to its end);
 * - general instances: error <= optimum + D, D the largest error range of one tensor. The convex
 *   hull relaxation (a lower bound on the optimum) differs from the Lagrangian solution in one
 *   partly taken hull step when hull slopes are distinct, as they are with random real errors,
 *   and the fill only lowers the error;
 * - convex instances with equal byte steps: exactly optimal. There every step costs the same
 *   bytes, so the best k steps are the k largest error reductions, which taking steps by rate
 *   gives. Errors are integers there, so "exactly" means equal sums. */
#include "target_alloc.h"
#include "test_util.h"

static tu_rng rng;

static uint64_t below(uint64_t n) { return tu_next(&rng) % n; }

/* ---- instances ------------------------------------------------------------------------------- */

#define MAX_OPT 16

typedef struct instance {
    size_t n;
    qk_alloc_tensor *t;
    qk_alloc_option *opt; /* n * MAX_OPT */
} instance;

static instance new_instance(size_t n) {
    instance in = {n, tu_poisoned(n * sizeof(qk_alloc_tensor)), tu_poisoned(n * MAX_OPT * sizeof(qk_alloc_option))};
    for (size_t i = 0; i < n; i++) in.t[i] = (qk_alloc_tensor){in.opt + i * MAX_OPT, 0};
    return in;
}

static void free_instance(instance *in) {
    free(in->t);
    free(in->opt);
}

/* Appends an option; its type is its position at creation, so a shuffle can be traced. */
static void add_opt(instance *in, size_t i, uint64_t bytes, double error) {
    qk_alloc_option *o = &in->opt[i * MAX_OPT + (size_t)in->t[i].n_options];
    *o = (qk_alloc_option){in->t[i].n_options, bytes, error};
    in->t[i].n_options++;
}

static void shuffle_options(instance *in) {
    for (size_t i = 0; i < in->n; i++) {
        qk_alloc_option *o = in->opt + i * MAX_OPT;
        for (int j = in->t[i].n_options - 1; j > 0; j--) {
            int r = (int)below((uint64_t)j + 1);
            qk_alloc_option x = o[j];
            o[j] = o[r];
            o[r] = x;
        }
    }
}

/* Options like quantization types of one tensor: error roughly halving per extra bit, with noise,
 * so some options are dominated and some lie off the convex hull. */
static instance random_instance(size_t n, int k_max) {
    instance in = new_instance(n);
    for (size_t i = 0; i < n; i++) {
        uint64_t elems = 256 * (1 + below(4096));
        double scale = 0.1 + 10.0 * tu_u01(&rng);
        int k = 1 + (int)below((uint64_t)k_max);
        for (int j = 0; j < k; j++) {
            double bpw = 1.5 + 14.5 * tu_u01(&rng);
            add_opt(&in, i, (uint64_t)((double)elems * bpw / 8),
                    scale * (double)elems * exp2(-bpw) * (0.5 + tu_u01(&rng)));
        }
    }
    return in;
}

static uint64_t total_bytes(const instance *in, const int *c) {
    uint64_t s = 0;
    for (size_t i = 0; i < in->n; i++) s += in->t[i].options[c[i]].bytes;
    return s;
}

static double total_error(const instance *in, const int *c) {
    double s = 0;
    for (size_t i = 0; i < in->n; i++) s += in->t[i].options[c[i]].error;
    return s;
}

/* The smallest option (least error, then first, among equal sizes) or the least-error option
 * (smallest, then first, among equal errors), found by a plain scan. */
static int smallest(const qk_alloc_tensor *t) {
    int b = 0;
    for (int j = 1; j < t->n_options; j++) {
        const qk_alloc_option *o = &t->options[j], *x = &t->options[b];
        if (o->bytes < x->bytes || (o->bytes == x->bytes && o->error < x->error)) b = j;
    }
    return b;
}

static int least_error(const qk_alloc_tensor *t) {
    int b = 0;
    for (int j = 1; j < t->n_options; j++) {
        const qk_alloc_option *o = &t->options[j], *x = &t->options[b];
        if (o->error < x->error || (o->error == x->error && o->bytes < x->bytes)) b = j;
    }
    return b;
}

static int *poisoned_choice(size_t n) { return tu_poisoned(n * sizeof(int)); }

/* Solves and checks what holds for every instance: the return code, each choice in range, the
 * total within budget, the reported range, and that no improving upgrade still fits. */
static int solve_checked(const instance *in, uint64_t budget, int *c, const char *what) {
    uint64_t lo = 0xA5A5, hi = 0xA5A5, want_lo = 0, want_hi = 0;
    for (size_t i = 0; i < in->n; i++) {
        want_lo += in->t[i].options[smallest(&in->t[i])].bytes;
        want_hi += in->t[i].options[least_error(&in->t[i])].bytes;
    }
    int rc = qk_alloc_solve(in->t, in->n, budget, c, &lo, &hi);
    CHECK(lo == want_lo && hi == want_hi, "%s: range %" PRIu64 "..%" PRIu64 ", want %" PRIu64 "..%" PRIu64, what, lo,
          hi, want_lo, want_hi);
    CHECK(rc == (want_lo > budget ? -1 : 0), "%s: returned %d with budget %" PRIu64 " and minimum %" PRIu64, what, rc,
          budget, want_lo);
    for (size_t i = 0; i < in->n; i++)
        if (c[i] < 0 || c[i] >= in->t[i].n_options) {
            CHECK(0, "%s: tensor %zu: choice %d of %d options", what, i, c[i], in->t[i].n_options);
            return -3;
        }
    if (rc != 0) return rc;
    uint64_t used = total_bytes(in, c);
    CHECK(used <= budget, "%s: %" PRIu64 " bytes over a budget of %" PRIu64, what, used, budget);
    int stuck = 1;
    for (size_t i = 0; i < in->n && stuck; i++)
        for (int j = 0; j < in->t[i].n_options; j++) {
            const qk_alloc_option *o = &in->t[i].options[j], *cur = &in->t[i].options[c[i]];
            if (o->bytes > cur->bytes && o->error < cur->error && o->bytes - cur->bytes <= budget - used) {
                CHECK(0, "%s: tensor %zu could still take option %d (%" PRIu64 " bytes left)", what, i, j,
                      budget - used);
                stuck = 0;
                break;
            }
        }
    return rc;
}

/* The least error within budget over every combination (small instances only). */
static double brute_force(const instance *in, uint64_t budget) {
    int c[8] = {0};
    double best = INFINITY;
    for (;;) {
        if (total_bytes(in, c) <= budget) {
            double e = total_error(in, c);
            if (e < best) best = e;
        }
        size_t i = 0;
        while (i < in->n && ++c[i] == in->t[i].n_options) c[i++] = 0;
        if (i == in->n) return best;
    }
}

static uint64_t budget_between(const instance *in) {
    uint64_t lo = 0, hi = 0;
    for (size_t i = 0; i < in->n; i++) {
        lo += in->t[i].options[smallest(&in->t[i])].bytes;
        hi += in->t[i].options[least_error(&in->t[i])].bytes;
    }
    return lo + below(hi - lo + 1);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* Whatever the budget, the chosen total fits it and nothing improving is left unbought. */
static void test_total_never_exceeds_budget(void) {
    for (int r = 0; r < 400; r++) {
        instance in = random_instance(1 + below(60), 1 + (int)below(MAX_OPT));
        int *c = poisoned_choice(in.n);
        char what[64];
        snprintf(what, sizeof what, "random instance %d", r);
        uint64_t b = budget_between(&in);
        solve_checked(&in, b, c, what);
        solve_checked(&in, b + below(1000), c, what); /* past the maximum too, at times */
        free(c);
        free_instance(&in);
    }
}

/* 6 tensors x 4 options against every combination: never below the optimum, never above it by
 * more than one tensor's error range (see the top of the file). */
static void test_near_optimal_against_brute_force(void) {
    int exact = 0, runs = 600;
    double worst = 1.0;
    for (int r = 0; r < runs; r++) {
        instance in = random_instance(6, 4);
        for (size_t i = 0; i < in.n; i++)
            while (in.t[i].n_options < 4) add_opt(&in, i, 1 + below(100000), 1000.0 * tu_u01(&rng));
        uint64_t b = budget_between(&in);
        int c[6];
        char what[64];
        snprintf(what, sizeof what, "brute force instance %d", r);
        if (solve_checked(&in, b, c, what) != 0) {
            free_instance(&in);
            continue;
        }
        double got = total_error(&in, c), opt = brute_force(&in, b), d = 0;
        for (size_t i = 0; i < in.n; i++) {
            double range = in.t[i].options[smallest(&in.t[i])].error - in.t[i].options[least_error(&in.t[i])].error;
            if (range > d) d = range;
        }
        CHECK(got >= opt - 1e-9 * opt, "%s: error %.17g below the optimum %.17g", what, got, opt);
        CHECK(got <= opt + d + 1e-9 * opt, "%s: error %.17g, optimum %.17g, allowed gap %.17g", what, got, opt, d);
        exact += got <= opt * (1 + 1e-12);
        if (opt > 0 && got / opt > worst) worst = got / opt;
        free_instance(&in);
    }
    printf("brute force: %d of %d instances exactly optimal, worst error / optimum %.4f\n", exact, runs, worst);
}

/* Convex options with equal byte steps: exactly the optimum, at every budget. */
static void test_exact_when_convex_with_equal_steps(void) {
    for (int r = 0; r < 300; r++) {
        instance in = new_instance(6);
        uint64_t step = 1 + below(1000);
        for (size_t i = 0; i < in.n; i++) {
            int k = 1 + (int)below(5);
            double drop[5];
            for (int j = 0; j < k; j++) drop[j] = (double)(1 + below(1000));
            for (int a = 0; a < k; a++) /* strictly decreasing drops: a strictly convex curve */
                for (int b = a + 1; b < k; b++)
                    if (drop[b] > drop[a]) {
                        double x = drop[a];
                        drop[a] = drop[b];
                        drop[b] = x;
                    }
            uint64_t base = below(100000);
            double e = (double)below(1000);
            for (int j = 0; j < k; j++) e += drop[j];
            for (int j = 0; j < k; j++) {
                add_opt(&in, i, base + (uint64_t)j * step, e);
                if (j + 1 < k) e -= drop[j];
            }
        }
        shuffle_options(&in);
        uint64_t b = budget_between(&in);
        int c[6];
        char what[64];
        snprintf(what, sizeof what, "convex instance %d", r);
        if (solve_checked(&in, b, c, what) == 0) {
            double got = total_error(&in, c), opt = brute_force(&in, b);
            CHECK(got == opt, "%s: budget %" PRIu64 ": error %.17g, optimum %.17g", what, b, got, opt);
        }
        free_instance(&in);
    }
}

/* Same input, same choice; and the same types whatever order the options are listed in. */
static void test_deterministic_and_independent_of_option_order(void) {
    for (int r = 0; r < 20; r++) {
        instance in = random_instance(300, 12);
        uint64_t b = budget_between(&in);
        int *c1 = poisoned_choice(in.n), *c2 = poisoned_choice(in.n), *c3 = poisoned_choice(in.n);
        int *t1 = poisoned_choice(in.n);
        solve_checked(&in, b, c1, "determinism");
        solve_checked(&in, b, c2, "determinism");
        CHECK(memcmp(c1, c2, in.n * sizeof *c1) == 0, "determinism %d: two runs chose differently", r);
        for (size_t i = 0; i < in.n; i++) t1[i] = in.t[i].options[c1[i]].type;
        shuffle_options(&in);
        solve_checked(&in, b, c3, "shuffled options");
        size_t diff = 0;
        while (diff < in.n && in.t[diff].options[c3[diff]].type == t1[diff]) diff++;
        CHECK(diff == in.n, "option order %d: tensor %zu took type %d, before the shuffle %d", r, diff,
              diff < in.n ? in.t[diff].options[c3[diff]].type : -1, diff < in.n ? t1[diff] : -1);
        free(c1);
        free(c2);
        free(c3);
        free(t1);
        free_instance(&in);
    }
    /* exact ties: equal bytes and error go to the first listed; equal error to the fewer bytes */
    instance in = new_instance(2);
    add_opt(&in, 0, 100, 5.0);
    add_opt(&in, 0, 100, 5.0);
    add_opt(&in, 0, 50, 9.0);
    add_opt(&in, 1, 300, 1.0);
    add_opt(&in, 1, 200, 1.0);
    add_opt(&in, 1, 100, 4.0);
    int c[2];
    solve_checked(&in, UINT64_MAX, c, "ties");
    CHECK(c[0] == 0 && c[1] == 1, "ties: chose %d and %d, want 0 and 1", c[0], c[1]);
    free_instance(&in);
}

/* Below the smallest options: -1, the true range, and the smallest options in choice[]; at the
 * minimum itself, those options and 0. */
static void test_budget_below_minimum(void) {
    instance in = random_instance(50, 8);
    uint64_t lo = 0, hi = 0;
    for (size_t i = 0; i < in.n; i++) {
        lo += in.t[i].options[smallest(&in.t[i])].bytes;
        hi += in.t[i].options[least_error(&in.t[i])].bytes;
    }
    int *c = poisoned_choice(in.n);
    CHECK(solve_checked(&in, lo - 1, c, "below the minimum") == -1, "below the minimum: not -1");
    for (size_t i = 0; i < in.n; i++)
        CHECK(c[i] == smallest(&in.t[i]), "below the minimum: tensor %zu: option %d, want %d", i, c[i],
              smallest(&in.t[i]));
    CHECK(solve_checked(&in, 0, c, "budget 0") == -1, "budget 0: not -1");
    CHECK(solve_checked(&in, lo, c, "at the minimum") == 0, "at the minimum: not 0");
    for (size_t i = 0; i < in.n; i++)
        CHECK(c[i] == smallest(&in.t[i]), "at the minimum: tensor %zu: option %d, want %d", i, c[i],
              smallest(&in.t[i]));
    CHECK(qk_alloc_solve(in.t, in.n, lo - 1, c, NULL, NULL) == -1, "without min/max pointers: not -1");
    uint64_t only_hi = 0;
    CHECK(qk_alloc_solve(in.t, in.n, lo, c, NULL, &only_hi) == 0 && only_hi == hi,
          "only max_bytes: %" PRIu64 ", want %" PRIu64, only_hi, hi);
    free(c);
    free_instance(&in);
}

/* At the maximum (and past it) every tensor gets its least-error option, which is neither the
 * largest one (a larger option with more error is listed) nor a larger copy of the same error. */
static void test_budget_at_maximum_gives_least_error(void) {
    instance in = random_instance(80, 12);
    for (size_t i = 0; i < in.n; i++) {
        const qk_alloc_option *best = &in.t[i].options[least_error(&in.t[i])];
        uint64_t b = best->bytes;
        double e = best->error;
        add_opt(&in, i, b + 1000, e);              /* as good, larger */
        add_opt(&in, i, b * 3 + 7, e * 1.5 + 1.0); /* the largest, and worse */
    }
    shuffle_options(&in);
    uint64_t hi = 0;
    for (size_t i = 0; i < in.n; i++) hi += in.t[i].options[least_error(&in.t[i])].bytes;
    int *c = poisoned_choice(in.n);
    const uint64_t budgets[] = {hi, hi + 12345, UINT64_MAX};
    for (int k = 0; k < 3; k++) {
        solve_checked(&in, budgets[k], c, "at the maximum");
        for (size_t i = 0; i < in.n; i++)
            CHECK(c[i] == least_error(&in.t[i]), "budget %" PRIu64 ": tensor %zu: option %d, want %d", budgets[k], i,
                  c[i], least_error(&in.t[i]));
    }
    free(c);
    free_instance(&in);
}

/* An option above the convex hull is still bought when the hull's next point does not fit. */
static void test_fill_takes_options_off_the_hull(void) {
    instance in = new_instance(1);
    add_opt(&in, 0, 0, 10.0);
    add_opt(&in, 0, 10, 0.0);
    add_opt(&in, 0, 9, 9.5); /* above the line from (0, 10) to (10, 0) */
    int c[1];
    solve_checked(&in, 9, c, "off the hull");
    CHECK(c[0] == 2, "off the hull: chose option %d, want 2", c[0]);
    solve_checked(&in, 10, c, "on the hull");
    CHECK(c[0] == 1, "on the hull: chose option %d, want 1", c[0]);
    free_instance(&in);
}

/* Worked by hand. The multiplier sees each tensor's hull, not its next option: tensor 0's cheap
 * first step (rate 0.1) hides a steep second one (10 bytes for 10 in all, rate 1.0 over both),
 * which beats tensor 1's whole step (rate 0.5) for the same 10 bytes. */
static void test_multiplier_uses_the_convex_hull(void) {
    instance in = new_instance(2);
    add_opt(&in, 0, 0, 10.0);
    add_opt(&in, 0, 1, 9.9);
    add_opt(&in, 0, 10, 0.0);
    add_opt(&in, 1, 0, 5.0);
    add_opt(&in, 1, 10, 0.0);
    int c[2];
    solve_checked(&in, 10, c, "hull");
    CHECK(c[0] == 2 && c[1] == 0, "hull: chose %d and %d, want 2 and 0 (error 5, not 10)", c[0], c[1]);
    free_instance(&in);
}

/* Worked by hand. Both hulls are one step of 100 bytes, too large for a budget of 10, so the fill
 * spends it all, the best error per byte first: tensor 0 to 5 bytes (0.8 per byte, not 0.5 for
 * 10 bytes at once), then tensor 1 to 5 bytes (0.3, against tensor 0's next 0.2). */
static void test_fill_buys_the_best_rate_first(void) {
    instance in = new_instance(2);
    add_opt(&in, 0, 0, 100.0);
    add_opt(&in, 0, 5, 96.0);
    add_opt(&in, 0, 10, 95.0);
    add_opt(&in, 0, 100, 0.0);
    add_opt(&in, 1, 0, 50.0);
    add_opt(&in, 1, 5, 48.5);
    add_opt(&in, 1, 10, 47.0);
    add_opt(&in, 1, 100, 0.0);
    int c[2];
    solve_checked(&in, 10, c, "fill order");
    CHECK(c[0] == 1 && c[1] == 1, "fill order: chose %d and %d, want 1 and 1", c[0], c[1]);
    free_instance(&in);
}

/* A pinned tensor (one option) keeps it at every budget, and its bytes count. */
static void test_pinned_tensor_keeps_its_option(void) {
    instance in = random_instance(40, 10);
    for (size_t i = 0; i < in.n; i += 3) {
        in.t[i].n_options = 0;
        add_opt(&in, i, 1000 + below(1000000), 1e6 * tu_u01(&rng)); /* large and bad, yet kept */
    }
    int *c = poisoned_choice(in.n);
    for (int r = 0; r < 50; r++) {
        solve_checked(&in, budget_between(&in), c, "pinned");
        for (size_t i = 0; i < in.n; i += 3) CHECK(c[i] == 0, "pinned tensor %zu: choice %d", i, c[i]);
    }
    free(c);
    free_instance(&in);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* 500 tensors x 16 options in under 100 ms (in every build, sanitizers included); 20000 timed. */
static void test_speed(void) {
    const size_t sizes[] = {500, 20000};
    for (int s = 0; s < 2; s++) {
        instance in = new_instance(sizes[s]);
        for (size_t i = 0; i < in.n; i++) {
            uint64_t elems = 4096 * (1 + below(4096));
            for (int j = 0; j < MAX_OPT; j++) {
                double bpw = 1.5 + j * 0.45 + 0.3 * tu_u01(&rng);
                add_opt(&in, i, (uint64_t)((double)elems * bpw / 8),
                        (double)elems * exp2(-bpw) * (0.8 + 0.4 * tu_u01(&rng)));
            }
        }
        shuffle_options(&in);
        int *c = poisoned_choice(in.n);
        double worst = 0, best = INFINITY;
        for (int r = 0; r < 5; r++) {
            uint64_t b = budget_between(&in);
            double t0 = now_ms();
            int rc = qk_alloc_solve(in.t, in.n, b, c, NULL, NULL);
            double ms = now_ms() - t0;
            CHECK(rc == 0 && total_bytes(&in, c) <= b, "speed: %zu tensors: rc %d or over budget", in.n, rc);
            if (ms > worst) worst = ms;
            if (ms < best) best = ms;
        }
        printf("speed: %zu tensors x %d options: %.3f ms best, %.3f ms worst of 5\n", in.n, MAX_OPT, best, worst);
        if (s == 0) CHECK(worst < 100.0, "speed: 500 tensors took %.3f ms", worst);
        free(c);
        free_instance(&in);
    }
}

/* Bad arguments: -2 and no crash; no tensors at all: 0 and an empty range. */
static void test_bad_arguments(void) {
    qk_alloc_option o[2] = {{0, 10, 1.0}, {1, 20, 0.5}};
    qk_alloc_tensor t = {o, 2};
    int c[1];
    CHECK(qk_alloc_solve(NULL, 1, 100, c, NULL, NULL) == -2, "NULL tensors");
    CHECK(qk_alloc_solve(&t, 1, 100, NULL, NULL, NULL) == -2, "NULL choice");
    t.n_options = 0;
    CHECK(qk_alloc_solve(&t, 1, 100, c, NULL, NULL) == -2, "no options");
    t = (qk_alloc_tensor){NULL, 2};
    CHECK(qk_alloc_solve(&t, 1, 100, c, NULL, NULL) == -2, "NULL options");
    t = (qk_alloc_tensor){o, 2};
    const double bad[] = {NAN, INFINITY, -1.0};
    for (int k = 0; k < 3; k++) {
        o[1].error = bad[k];
        CHECK(qk_alloc_solve(&t, 1, 100, c, NULL, NULL) == -2, "error %g accepted", bad[k]);
    }
    o[1].error = 0.0;
    CHECK(qk_alloc_solve(&t, 1, 100, c, NULL, NULL) == 0 && c[0] == 1, "error 0: choice %d", c[0]);
    uint64_t lo = 1, hi = 1;
    CHECK(qk_alloc_solve(NULL, 0, 0, NULL, &lo, &hi) == 0 && lo == 0 && hi == 0,
          "no tensors: range %" PRIu64 "..%" PRIu64, lo, hi);
}

int main(void) {
    rng.s = tu_seed();
    test_total_never_exceeds_budget();
    test_near_optimal_against_brute_force();
    test_exact_when_convex_with_equal_steps();
    test_deterministic_and_independent_of_option_order();
    test_budget_below_minimum();
    test_budget_at_maximum_gives_least_error();
    test_fill_takes_options_off_the_hull();
    test_multiplier_uses_the_convex_hull();
    test_fill_buys_the_best_rate_first();
    test_pinned_tensor_keeps_its_option();
    test_speed();
    test_bad_arguments();
    return tu_finish();
}
