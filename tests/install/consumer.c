/* A program outside the qkern tree, built against the installed package only. */
#include <qkern.h>
#include <stdio.h>

int main(void) {
    float x[32];
    unsigned char q[34];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) / 16.0f;
    qk_context *ctx;
    if (qk_context_create(NULL, &ctx) != QK_OK) return 1;
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = QK_TYPE_Q8_0, d.rows = 1, d.cols = 32;
    d.src = qk_host(x, sizeof x), d.dst = qk_host(q, sizeof q);
    qk_status st = qk_quantize(ctx, &d);
    qk_context_destroy(ctx);
    printf("qkern %s from the installed package: %s\n", qk_version_string(), qk_status_string(st));
    return st == QK_OK && qk_version() == QK_VERSION_NUMBER ? 0 : 1;
}
