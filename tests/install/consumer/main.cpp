// A program outside the reel tree: one softmax cross-entropy step through the installed headers.
#include <reel/core/reel.h>

#include <cstdio>

int main() {
  reel::Tensor w = reel::Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  w.requires_grad_();
  reel::Tensor x = reel::Tensor::ones({1, 3});
  reel::Tensor loss = reel::cross_entropy(reel::matmul(x, w), {1});
  loss.backward();
  // logits [9, 12]: loss = log(1 + e^-3)
  std::printf("loss %.4f grad %.4f\n", loss.item(), w.grad().at({0, 1}));
  return 0;
}
