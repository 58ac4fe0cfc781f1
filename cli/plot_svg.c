#include "plot_svg.h"

#include <math.h>
#include <string.h>

/* The canvas: the plot area sits inside fixed margins wide enough for tick labels. */
enum { WIDTH = 960, PLOT_TOP = 76, PLOT_HEIGHT = 480, LEFT = 86, RIGHT = 28, NOTE_LINE = 16 };
#define PLOT_LEFT  ((double)LEFT)
#define PLOT_RIGHT ((double)(WIDTH - RIGHT))
#define PLOT_BOT   ((double)(PLOT_TOP + PLOT_HEIGHT))
/* Labels are measured, not rendered: an average glyph of the 11 px sans-serif used for them. */
#define CHAR_W  6.2
#define LABEL_H 12.0

static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* XML 1.0 forbids most control characters even when escaped */
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

typedef struct axis {
    double lo, hi;
    int log;
    double a0, a1; /* pixel span: a0 at lo, a1 at hi */
} axis;

static double to_px(const axis *a, double v) {
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return a->a0 + t * (a->a1 - a->a0);
}

/* 1, 2 or 5 times a power of ten, about range / 7: between 5 and 12 ticks. */
static double nice_step(double range) {
    double raw = range / 7.0, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

static void linear_range(axis *a, double lo, double hi) {
    if (!(hi > lo)) {
        double d = lo != 0.0 ? fabs(lo) * 0.1 : 1.0;
        lo -= d;
        hi += d;
    }
    double pad = (hi - lo) * 0.04;
    a->lo = lo - pad;
    a->hi = hi + pad;
    a->log = 0;
}

/* A tick's text: no more digits than the step needs. */
static void tick_text(char *buf, size_t len, double v, double step) {
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6) v = 0.0; /* no "-0.00" */
    if (fabs(v) >= 1e6 || (v != 0.0 && fabs(v) < 1e-3))
        snprintf(buf, len, "%.3g", v);
    else
        snprintf(buf, len, "%.*f", dec > 6 ? 6 : dec, v);
}

static void draw_x_axis(FILE *f, const axis *a, const char *label) {
    double step = nice_step(a->hi - a->lo);
    for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-9; v += step) {
        double x = to_px(a, v);
        char t[32];
        tick_text(t, sizeof t, v, step);
        fprintf(f, "<line class=\"grid\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, PLOT_TOP, x, PLOT_BOT);
        fprintf(f, "<line class=\"tick\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, PLOT_BOT, x,
                PLOT_BOT + 5);
        fprintf(f, "<text class=\"tick\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", x, PLOT_BOT + 19,
                t);
    }
    fprintf(f, "<text class=\"axis\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", (PLOT_LEFT + PLOT_RIGHT) / 2,
            PLOT_BOT + 42);
    put_text(f, label);
    fputs("</text>\n", f);
}

static void y_tick(FILE *f, const axis *a, double v, const char *text, int major) {
    double y = to_px(a, v);
    if (major)
        fprintf(f, "<line class=\"grid\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", PLOT_LEFT, y, PLOT_RIGHT,
                y);
    fprintf(f, "<line class=\"tick\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", PLOT_LEFT - (major ? 5 : 3),
            y, PLOT_LEFT, y);
    if (text)
        fprintf(f, "<text class=\"tick\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", PLOT_LEFT - 8, y + 4,
                text);
}

static void draw_y_axis(FILE *f, const axis *a, const char *label) {
    char t[32];
    if (a->log) {
        /* decades, and 2x / 5x labelled too when there are few decades to label */
        const int few = log10(a->hi / a->lo) < 3.0;
        for (double d = pow(10.0, floor(log10(a->lo))); d <= a->hi; d *= 10.0)
            for (int m = 1; m <= 9; m++) {
                double v = d * m;
                if (v < a->lo || v > a->hi) continue;
                int labelled = m == 1 || (few && (m == 2 || m == 5));
                snprintf(t, sizeof t, "%g", v);
                y_tick(f, a, v, labelled ? t : NULL, m == 1);
            }
    } else {
        double step = nice_step(a->hi - a->lo);
        for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-9; v += step) {
            tick_text(t, sizeof t, v, step);
            y_tick(f, a, v, t, 1);
        }
    }
    double cy = (PLOT_TOP + PLOT_BOT) / 2;
    fprintf(f, "<text class=\"axis\" x=\"18\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.2f)\">", cy,
            cy);
    put_text(f, label);
    fputs(a->log ? " (log scale)</text>\n" : "</text>\n", f);
}

/* ---- labels that do not overlap --------------------------------------------------------------- */

typedef struct box {
    double x0, y0, x1, y1;
} box;

static int overlaps(const box *a, const box *b) {
    return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

/* Tries positions around the mark, nearest first, for one that hits no label placed so far and
 * stays inside the plot; the first position otherwise. Returns the text's anchor point. */
static void place_label(box *placed, size_t n_placed, double mx, double my, size_t len, double *tx, double *ty) {
    static const double offsets[][2] = {{7, -7},  {7, 15}, {-1, -7},  {-1, 15}, {7, -21}, {7, 29}, {-1, -21}, {-1, 29},
                                        {7, -35}, {7, 43}, {-1, -35}, {-1, 43}, {7, -49}, {7, 57}, {-1, -49}, {-1, 57}};
    const double w = (double)len * CHAR_W;
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        /* a negative x offset puts the label's right end left of the mark */
        double x = offsets[k][0] > 0 ? mx + offsets[k][0] : mx - 7 - w, y = my + offsets[k][1];
        box b = {x, y - LABEL_H + 2, x + w, y + 2};
        if (b.x0 < PLOT_LEFT || b.x1 > PLOT_RIGHT || b.y0 < PLOT_TOP || b.y1 > PLOT_BOT) continue;
        int free = 1;
        for (size_t j = 0; j < n_placed && free; j++) free = !overlaps(&b, &placed[j]);
        if (free) {
            placed[n_placed] = b;
            *tx = x;
            *ty = y;
            return;
        }
    }
    *tx = mx + 7;
    *ty = my - 7;
    placed[n_placed] = (box){*tx, *ty - LABEL_H + 2, *tx + w, *ty + 2};
}

static void legend_entry(FILE *f, double x, double y, const char *shape, const char *text) {
    fprintf(f, "%s", shape);
    fprintf(f, "<text class=\"legend\" x=\"%.2f\" y=\"%.2f\">", x + 16, y + 4);
    put_text(f, text);
    fputs("</text>\n", f);
}

static int finite_point(double x, double y, int log_y) { return isfinite(x) && isfinite(y) && (!log_y || y > 0); }

int plot_svg_write(FILE *f, const plot_desc *d) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t n_pts = 0;
#define SEE(px, py)                                                                                                    \
    do {                                                                                                               \
        if (isfinite(px) && isfinite(py)) {                                                                            \
            xlo = fmin(xlo, px), xhi = fmax(xhi, px), ylo = fmin(ylo, py), yhi = fmax(yhi, py);                        \
            n_pts++;                                                                                                   \
        }                                                                                                              \
    } while (0)
    for (size_t i = 0; i < d->n_curve; i++) SEE(d->curve_x[i], d->curve_y[i]);
    for (size_t i = 0; i < d->n_marks; i++) SEE(d->marks[i].x, d->marks[i].y);
    if (d->point.label) SEE(d->point.x, d->point.y);
#undef SEE
    if (!n_pts) return -1;
    axis ax, ay;
    linear_range(&ax, xlo, xhi);
    if (ylo > 0 && yhi / ylo >= 100.0) {
        /* a margin of a few percent in log space, so no point sits on the frame */
        double pad = pow(yhi / ylo, 0.04);
        ay = (axis){ylo / pad, yhi * pad, 1, 0, 0};
    } else {
        linear_range(&ay, ylo, yhi);
    }
    ax.a0 = PLOT_LEFT;
    ax.a1 = PLOT_RIGHT;
    ay.a0 = PLOT_BOT;
    ay.a1 = PLOT_TOP;

    const int height = PLOT_TOP + PLOT_HEIGHT + 64 + (int)d->n_notes * NOTE_LINE;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            WIDTH, height, WIDTH, height);
    fputs("<style>\n"
          "  .grid { stroke: #e4e4e4; stroke-width: 1; }\n"
          "  .tick { stroke: #444; font-size: 11px; fill: #333; }\n"
          "  text.tick { stroke: none; }\n"
          "  .axis { font-size: 13px; fill: #222; }\n"
          "  .title { font-size: 16px; font-weight: bold; fill: #111; }\n"
          "  .subtitle { font-size: 12px; fill: #444; }\n"
          "  .legend, .label { font-size: 11px; fill: #222; }\n"
          "  .note { font-size: 11px; fill: #555; }\n"
          "  #curve { fill: none; stroke: #1f77b4; stroke-width: 2; }\n"
          "  .curve-pt { fill: #1f77b4; }\n"
          "  .mark { fill: #2ca02c; stroke: #1a601a; stroke-width: 1; }\n"
          "  .mark.open { fill: #fff; stroke: #7f7f7f; stroke-width: 1.5; }\n"
          "  #target { fill: #d62728; stroke: #7a1515; stroke-width: 1; }\n"
          "  .leader { stroke: #999; stroke-width: 0.7; }\n"
          "</style>\n"
          "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
          f);
    fputs("<text class=\"title\" x=\"20\" y=\"26\">", f);
    put_text(f, d->title);
    fputs("</text>\n<text class=\"subtitle\" x=\"20\" y=\"46\">", f);
    put_text(f, d->subtitle);
    fputs("</text>\n", f);

    draw_x_axis(f, &ax, d->x_label);
    draw_y_axis(f, &ay, d->y_label);
    fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", PLOT_LEFT,
            PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_HEIGHT);

    fputs("<polyline id=\"curve\" points=\"", f);
    size_t drawn = 0;
    for (size_t i = 0; i < d->n_curve; i++)
        if (finite_point(d->curve_x[i], d->curve_y[i], ay.log))
            fprintf(f, "%s%.2f,%.2f", drawn++ ? " " : "", to_px(&ax, d->curve_x[i]), to_px(&ay, d->curve_y[i]));
    fputs("\"/>\n<g class=\"curve-points\">\n", f);
    for (size_t i = 0; i < d->n_curve; i++)
        if (finite_point(d->curve_x[i], d->curve_y[i], ay.log))
            fprintf(f, "<circle class=\"curve-pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"2\"/>\n", to_px(&ax, d->curve_x[i]),
                    to_px(&ay, d->curve_y[i]));
    fputs("</g>\n", f);

    /* the legend, top right inside the plot, where a falling curve leaves room; labels keep off it */
    const double lx = PLOT_RIGHT - 330, legend_h = d->point.label ? 74 : 58;
    box placed[512];
    placed[0] = (box){lx - 6, PLOT_TOP + 6, lx + 316, PLOT_TOP + 6 + legend_h};
    size_t n_placed = 1;
    /* markers first, so that no label covers one (the room left keeps one slot per label) */
    for (size_t i = 0; i < d->n_marks && n_placed + d->n_marks + 2 < sizeof placed / sizeof placed[0]; i++) {
        const plot_mark *m = &d->marks[i];
        if (!finite_point(m->x, m->y, ay.log)) continue;
        double mx = to_px(&ax, m->x), my = to_px(&ay, m->y);
        placed[n_placed++] = (box){mx - 4, my - 4, mx + 4, my + 4};
    }
    /* the labels after every marker, so no marker covers a label */
    fputs("<g class=\"marks\">\n", f);
    for (size_t i = 0; i < d->n_marks; i++) {
        const plot_mark *m = &d->marks[i];
        if (!finite_point(m->x, m->y, ay.log)) continue;
        fprintf(f, "<circle class=\"mark%s\" data-label=\"", m->open ? " open" : "");
        put_text(f, m->label);
        fprintf(f, "\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\"><title>", to_px(&ax, m->x), to_px(&ay, m->y));
        put_text(f, m->label);
        fprintf(f, ": %.4g bpw, error %.6g</title></circle>\n", m->x, m->y);
    }
    if (d->point.label && finite_point(d->point.x, d->point.y, ay.log)) {
        double x = to_px(&ax, d->point.x), y = to_px(&ay, d->point.y);
        fprintf(f, "<path id=\"target\" d=\"M%.2f %.2fl6 6l-6 6l-6 -6z\"><title>", x, y - 6);
        put_text(f, d->point.label);
        fprintf(f, ": %.4g bpw, error %.6g</title></path>\n", d->point.x, d->point.y);
        /* the target's label is placed first: it matters most */
        double tx, ty;
        place_label(placed, n_placed++, x, y, strlen(d->point.label), &tx, &ty);
        fprintf(f, "<text class=\"label\" font-weight=\"bold\" x=\"%.2f\" y=\"%.2f\">", tx, ty);
        put_text(f, d->point.label);
        fputs("</text>\n", f);
    }
    for (size_t i = 0; i < d->n_marks && n_placed < sizeof placed / sizeof placed[0]; i++) {
        const plot_mark *m = &d->marks[i];
        if (!finite_point(m->x, m->y, ay.log)) continue;
        double mx = to_px(&ax, m->x), my = to_px(&ay, m->y), tx, ty;
        place_label(placed, n_placed++, mx, my, strlen(m->label), &tx, &ty);
        if (fabs(ty - my) > 20) /* far from its marker: say whose it is */
            fprintf(f, "<line class=\"leader\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", mx, my,
                    tx > mx ? tx : tx + (double)strlen(m->label) * CHAR_W, ty < my ? ty + 2 : ty - LABEL_H + 2);
        fprintf(f, "<text class=\"label\" x=\"%.2f\" y=\"%.2f\">", tx, ty);
        put_text(f, m->label);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);

    double ly = PLOT_TOP + 16;
    char shape[256];
    fprintf(f,
            "<g class=\"legend\">\n<rect x=\"%.2f\" y=\"%.2f\" width=\"322\" height=\"%.0f\" fill=\"#fff\" "
            "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
            lx - 6, ly - 10, legend_h);
    snprintf(shape, sizeof shape,
             "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n", lx, ly,
             lx + 12, ly);
    legend_entry(f, lx, ly, shape, d->curve_legend);
    ly += 16;
    snprintf(shape, sizeof shape, "<circle class=\"mark\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\"/>\n", lx + 6, ly);
    legend_entry(f, lx, ly, shape, d->dot_legend);
    ly += 16;
    snprintf(shape, sizeof shape, "<circle class=\"mark open\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\"/>\n", lx + 6, ly);
    legend_entry(f, lx, ly, shape, d->ring_legend);
    if (d->point.label) {
        ly += 16;
        snprintf(shape, sizeof shape, "<path fill=\"#d62728\" d=\"M%.2f %.2fl5 5l-5 5l-5 -5z\"/>\n", lx + 6, ly - 5);
        legend_entry(f, lx, ly, shape, "the target's mixture");
    }
    fputs("</g>\n", f);

    for (size_t i = 0; i < d->n_notes; i++) {
        fprintf(f, "<text class=\"note\" x=\"20\" y=\"%d\">", PLOT_TOP + PLOT_HEIGHT + 64 + (int)i * NOTE_LINE);
        put_text(f, d->notes[i]);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    return 0;
}
