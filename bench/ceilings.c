/* placeholder: being written */
#include "ceilings.h"
