"""Low-level StyleGAN2 ops: FIR resampling (upfirdn2d), fused bias + activation (bias_act), and
convolution with resampling (conv2d_resample). Each op has an `impl=` switch; the pure-torch
reference is the oracle and the path used under torch.func transforms. Nothing compiles at import."""
