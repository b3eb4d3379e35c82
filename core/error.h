#pragma once
// reel::Error: what every op throws on bad input. The message names the op, the shapes and what
// was expected; nothing in reel aborts on bad input.
#include <sstream>
#include <string>

#include "reel/kernels/error.h"

// REEL_CHECK(cond, "matmul: " << shape_str(a) << " ...") throws reel::Error with the streamed
// message when cond is false.
#define REEL_CHECK(cond, ...)                    \
  do {                                           \
    if (!(cond)) {                               \
      std::ostringstream reel_check_os_;         \
      reel_check_os_ << __VA_ARGS__;             \
      throw ::reel::Error(reel_check_os_.str()); \
    }                                            \
  } while (0)
