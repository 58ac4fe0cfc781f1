/* placeholder: being written */
#include "moe_routing.h"
