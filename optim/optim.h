#pragma once
// Everything of optim/: #include <reel/optim/optim.h>
#include "reel/optim/clip_grad.h"
#include "reel/optim/lr_scheduler.h"
#include "reel/optim/optimizer.h"
