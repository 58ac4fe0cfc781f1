/* A small SVG chart written by hand (no library): one curve, one highlighted point, labelled
 * marks of two kinds and lines of notes, with axes, ticks and labels. `qkern quantize --plot`
 * draws a size target's error-vs-bpw curve with it. */
#ifndef QK_CLI_PLOT_SVG_H
#define QK_CLI_PLOT_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct plot_mark {
    double x, y;
    const char *label;
    int open; /* drawn as a ring (the second kind) rather than a dot */
} plot_mark;

typedef struct plot_desc {
    const char *title, *subtitle; /* two lines above the chart */
    const char *x_label, *y_label;
    const double *curve_x, *curve_y; /* n_curve points, ascending x: one polyline, id "curve" */
    size_t n_curve;
    const char *curve_legend;
    plot_mark point;        /* the highlighted point (id "target"), drawn when point.label is set */
    const plot_mark *marks; /* class "mark" (dot) or "mark open" (ring), data-label = label */
    size_t n_marks;
    const char *dot_legend, *ring_legend;
    const char *const *notes; /* lines under the chart */
    size_t n_notes;
} plot_desc;

/* Writes the chart as a standalone SVG document to f. The y axis is logarithmic when every y
 * is positive and they span two decades or more, else linear. Returns 0, or -1 when there is
 * no point to draw (nothing written). Points that are not finite are left out. */
int plot_svg_write(FILE *f, const plot_desc *d);

#endif
