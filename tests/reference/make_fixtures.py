#!/usr/bin/env python3
"""Makes ops.safetensors and lstm.safetensors: inputs, outputs and gradients of every differentiable op of reel's
core, computed by PyTorch in float64 and stored as float32. tests/core/test_reference.cpp runs
the same ops in reel on the same inputs and compares. reel itself never needs Python; run this
only to change the fixtures:

    pip install torch && python3 tests/reference/make_fixtures.py

Keys: "<case>.in<i>" inputs, "<case>.gout" the upstream gradient, "<case>.out" the output and
"<case>.grad<i>" d(sum(out * gout))/d(in<i>). Cross-entropy targets are "<case>.targets".
"""
import json
import os
import struct

import torch

torch.manual_seed(0)
F = torch.nn.functional
tensors = {}


def rand(*shape, positive=False):
    x = torch.randn(*shape, dtype=torch.float64)
    return x.abs() + 0.5 if positive else x


def case(name, fn, *inputs, extra=None):
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    gout = torch.randn(out.shape, dtype=torch.float64)
    out.backward(gout)
    for i, x in enumerate(leaves):
        tensors[f"{name}.in{i}"] = x.detach()
        tensors[f"{name}.grad{i}"] = x.grad
    tensors[f"{name}.gout"] = gout
    tensors[f"{name}.out"] = out.detach()
    for k, v in (extra or {}).items():
        tensors[f"{name}.{k}"] = v


case("add", lambda a, b: a + b, rand(3, 4), rand(4))
case("sub", lambda a, b: a - b, rand(3, 4), rand(3, 1))
case("mul", lambda a, b: a * b, rand(2, 3, 4), rand(()))
case("div", lambda a, b: a / b, rand(3, 4), rand(3, 4, positive=True))
case("div_bcast", lambda a, b: a / b, rand(2, 1, 4), rand(3, 1, positive=True))
case("neg", lambda x: -x, rand(4, 5))
case("exp", torch.exp, rand(4, 5))
case("log", torch.log, rand(4, 5, positive=True))
case("tanh", torch.tanh, rand(4, 5))
case("sigmoid", torch.sigmoid, rand(4, 5))
case("relu", torch.relu, rand(4, 5))
case("matmul", torch.matmul, rand(5, 7), rand(7, 3))
case("bmm", torch.matmul, rand(2, 5, 7), rand(2, 7, 3))
case("matmul_3x2", torch.matmul, rand(2, 5, 7), rand(7, 3))
case("matmul_2x3", torch.matmul, rand(5, 7), rand(2, 7, 3))
case("transpose", lambda x: x.transpose(0, 1).contiguous(), rand(3, 5))
case("permute", lambda x: x.permute(2, 0, 1).contiguous(), rand(2, 3, 4))
case("reshape", lambda x: x.reshape(4, -1) * 2.0, rand(2, 6))
case("sum_02", lambda x: x.sum(dim=(0, 2)), rand(2, 3, 4))
case("mean_1_keep", lambda x: x.mean(dim=1, keepdim=True), rand(2, 3, 4))
case("mean_all", lambda x: x.mean(), rand(2, 3, 4))
case("softmax_1", lambda x: torch.softmax(x, 1), rand(3, 5))
case("softmax_0", lambda x: torch.softmax(x, 0), rand(2, 3, 4))
case("log_softmax_2", lambda x: torch.log_softmax(x, 2), rand(2, 3, 4))
case("concat", lambda a, b: torch.cat([a, b, a], 1), rand(2, 3), rand(2, 2))
case("stack", lambda a, b: torch.stack([a, b], 1), rand(2, 3), rand(2, 3))
case("slice", lambda x: x[:, 1:5:2], rand(3, 6))
targets = torch.tensor([0, 4, 2, -100, 1, 3])
case("cross_entropy", lambda x: F.cross_entropy(x, targets), rand(6, 5),
     extra={"targets": targets.double()})
case("cross_entropy_smooth", lambda x: F.cross_entropy(x, targets, label_smoothing=0.1),
     rand(6, 5), extra={"targets": targets.double()})
case("mlp", lambda x, w1, b1, w2: F.cross_entropy(torch.tanh(x @ w1 + b1) @ w2, targets[:3].abs()),
     rand(3, 4), rand(4, 6), rand(6), rand(6, 5), extra={"targets": targets[:3].abs().double()})
case("linear", F.linear, rand(2, 3, 4), rand(5, 4), rand(5))
case("linear_nobias", F.linear, rand(3, 4), rand(2, 4))

def write(path, tensors):
    """safetensors, written by hand so that only torch is needed."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"torch": torch.__version__}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"wrote {len(tensors)} tensors to {path}")


here = os.path.dirname(os.path.abspath(__file__))
write(os.path.join(here, "ops.safetensors"), tensors)

# ---- lstm.safetensors: nn.LSTM in float64 on the cases tests/layers/test_lstm.cpp runs. Keys:
# "<case>.input" [B, T, D] (batch first), "<case>.h0"/"<case>.c0" when given, "<case>.lengths"
# when given (through pack_padded_sequence, unsorted), "<case>.p.<parameter>", the outputs
# "<case>.output", "<case>.h_n", "<case>.c_n", the upstream gradients "<case>.g_output",
# "<case>.g_h_n", "<case>.g_c_n", and "<case>.grad.<input|h0|c0|parameter>".
lstm = {}


def lstm_case(name, D, H, L, B, T, bidirectional=False, bias=True, state=False, lengths=None):
    m = torch.nn.LSTM(D, H, num_layers=L, bias=bias, batch_first=True,
                      bidirectional=bidirectional).double()
    dirs = 2 if bidirectional else 1
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(L * dirs, B, H, dtype=torch.float64, requires_grad=True) if state else None
    c0 = torch.randn(L * dirs, B, H, dtype=torch.float64, requires_grad=True) if state else None
    hx = (h0, c0) if state else None
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         batch_first=True, enforce_sorted=False)
        out, (hn, cn) = m(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        lstm[f"{name}.lengths"] = torch.tensor(lengths, dtype=torch.float64)
    else:
        out, (hn, cn) = m(x, hx)
    go, gh, gc = (torch.randn_like(t) for t in (out, hn, cn))
    ((out * go).sum() + (hn * gh).sum() + (cn * gc).sum()).backward()
    lstm[f"{name}.input"] = x.detach()
    lstm[f"{name}.grad.input"] = x.grad
    if state:
        lstm[f"{name}.h0"], lstm[f"{name}.c0"] = h0.detach(), c0.detach()
        lstm[f"{name}.grad.h0"], lstm[f"{name}.grad.c0"] = h0.grad, c0.grad
    for k, p in m.named_parameters():
        lstm[f"{name}.p.{k}"] = p.detach()
        lstm[f"{name}.grad.{k}"] = p.grad
    for k, v in (("output", out), ("h_n", hn), ("c_n", cn)):
        lstm[f"{name}.{k}"] = v.detach()
    lstm[f"{name}.g_output"], lstm[f"{name}.g_h_n"], lstm[f"{name}.g_c_n"] = go, gh, gc


torch.manual_seed(1)
lstm_case("one_layer", D=5, H=7, L=1, B=3, T=4)
lstm_case("two_layers_state_T33", D=6, H=5, L=2, B=2, T=33, state=True)
lstm_case("bidirectional_T1", D=3, H=4, L=1, B=3, T=1, bidirectional=True)
lstm_case("bidirectional_two_layers_lengths", D=4, H=3, L=2, B=4, T=6, bidirectional=True,
          state=True, lengths=[6, 2, 4, 1])
lstm_case("lengths", D=3, H=5, L=1, B=3, T=5, lengths=[3, 5, 1])
lstm_case("no_bias", D=4, H=3, L=1, B=2, T=3, bias=False)
write(os.path.join(here, "lstm.safetensors"), lstm)
