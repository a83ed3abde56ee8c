"""Networks behind the torch matchers. The published ones keep the module names of their weight files,
so those files load with `load_state_dict(strict=True)`: IResNet (InsightFace arcface_torch),
Inception-ResNet-v1 (facenet-pytorch) and SphereFace-20 (sphereface_pytorch); `weight_file` reads
and checks such files. `synth_nets` holds the two small SynthFaces matcher networks trained here."""
