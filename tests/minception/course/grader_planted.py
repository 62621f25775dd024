"""The planted mistakes of the grader's tests: for each exercise, a classic mistake written into a copy of the
solutions, and the words its hint must contain.

Each entry: ``(exercise, student file, the solution's line(s), the mistaken line(s), words of the hint)``. The
edit is a plain text replacement in the file ``new --solutions`` wrote, so a test fails loudly (``assert old in
text``) if the handout's solution changes under it.
"""

PLANTED = [
    ("relu", "relu.py", "    return gy * (y > 0)\n", "    return gy * (y >= 0)\n", "y > 0, not y >= 0"),
    ("softmax_cross_entropy", "loss.py",
     "    shifted = logits - logits.max(axis=1, keepdims=True)",
     "    shifted = logits", "subtract each row's maximum"),
    ("softmax_cross_entropy", "loss.py",
     "    q = smoothed_targets(labels, k, label_smoothing, gloss.dtype)\n",
     "    q = smoothed_targets(labels, k, 0.0, gloss.dtype)\n", "label_smoothing ignored"),
    ("im2col", "im2col.py", "x_padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))",
     "x_padded = x; oh, ow = conv_out_size(h, kh, sh, 0), conv_out_size(w, kw, sw, 0)", "forgot the padding"),
    ("im2col", "im2col.py", "cols[:, i, j] = window.transpose(1, 0, 2, 3)",
     "cols[:, j, i] = window.transpose(1, 0, 2, 3)", "swapped kernel offsets"),
    ("im2col", "im2col.py", "    return cols.reshape(c * kh * kw, n * oh * ow)",
     "    return cols.reshape(c * kh * kw, n * oh * ow).T", "transposed layout"),
    ("col2im", "im2col.py", "dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += cols[:, i, j]",
     "dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] = cols[:, i, j]", "`=` where `+=` is needed"),
    ("conv2d", "conv2d.py", "y = y2d.reshape(cout, n, oh, ow).transpose(1, 0, 2, 3)",
     "y = y2d.reshape(n, cout, oh, ow)", "transpose to (N, Cout, OH, OW)"),
    ("conv2d", "conv2d.py", "gy2d = gy.transpose(1, 0, 2, 3).reshape(cout, -1)",
     "gy2d = gy.reshape(cout, -1)", "transpose it to (Cout, N, OH, OW)"),
    ("max_pool", "pooling.py", "wins = (v > best) | xp.isnan(v)", "wins = (v >= best) | xp.isnan(v)",
     "FIRST maximum"),
    ("max_pool", "pooling.py", "gxp[window_slice(ky, kx, stride, (oh, ow))] += xp.where(won_here, gy, 0)",
     "sl = window_slice(ky, kx, stride, (oh, ow)); gxp[sl] = xp.where(won_here, gy, gxp[sl])",
     "`=` where `+=` is needed"),
    ("avg_pool", "pooling.py",
     "    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, count_include_pad, x.dtype)",
     "    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, True, x.dtype)", "count_include_pad"),
    ("batch_norm_train", "batch_norm.py", "    var = _channel_sum(centred * centred) / m ",
     "    var = _channel_sum(centred * centred) / (m - 1) ", "biased variance"),
    ("batch_norm_train", "batch_norm.py",
     "    gy = _relu_gradient(gy, y)\n    m = x.shape[0] * x.shape[2]",
     "    m = x.shape[0] * x.shape[2]", "forgot the ReLU mask"),
    ("batch_norm_eval", "batch_norm.py",
     "    invstd = 1.0 / (running_var.astype(np.float64) + eps) ** 0.5",
     "    invstd = 1.0 / (running_var.astype(np.float64) ** 0.5 + eps)", "inside the square root"),
    ("rmsprop", "rmsprop.py", "        denom = (ms + eps) ** 0.5", "        denom = ms ** 0.5 + eps",
     "TensorFlow's form"),
    ("inception_resnet_a", "inception_resnet_a.py",
     "ops.concat([self.branch0(x), self.branch1(x), self.branch2(x)], axis=1)",
     "ops.concat([self.branch1(x), self.branch0(x), self.branch2(x)], axis=1)", "concatenated in the order"),
]
