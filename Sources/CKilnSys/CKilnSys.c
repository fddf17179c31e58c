#include "CKilnSys.h"
