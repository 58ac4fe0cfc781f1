#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_types(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: qkern types\n");
        return 2;
    }
    printf(
        "| type    | id | block | bytes |    bpw | imatrix  |\n|---------|---:|------:|------:|-------:|----------|\n");
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        printf("| %-7s | %2d | %5d | %5d | %6.4f | %-8s |\n", ti.name, ti.type, ti.block_elems, ti.block_bytes,
               ti.bits_per_weight, ti.needs_imatrix ? "required" : (ti.uses_imatrix ? "used" : "-"));
    }
    return 0;
}

int cmd_devices(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: qkern devices\n");
        return 2;
    }
    for (int i = 0; i < qk_device_count(); i++) {
        qk_device_info d;
        if (qk_device_get(i, &d) != QK_OK) return cli_fail("devices", NULL);
        printf("%-10s %-48s %6.1f GiB  %d units\n", d.id, d.name, d.memory_bytes / 1073741824.0, d.compute_units);
    }
    return 0;
}
