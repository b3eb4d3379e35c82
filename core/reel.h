#pragma once
// Everything a user of the core library needs: #include <reel/core/reel.h>
#include "reel/core/allocator.h"
#include "reel/core/autograd.h"
#include "reel/core/device.h"
#include "reel/core/error.h"
#include "reel/core/gradcheck.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"
#include "reel/core/serialize.h"
#include "reel/core/tensor.h"
#include "reel/kernels/cpu/parallel.h"
