//! Stage 1: the multimodal convolutional autoencoder, trained on clean data only.
//!
//! Convolutions keep a local fault local in the latent map (a banded Jacobian), which is what
//! lets the stage-2 detector see it.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::fast_conv::{chain1d, chain2d, Layer1d, Layer2d};
use crate::layers::{conv, lrelu, Act};

/// Sizes of the stage-1 autoencoder. The defaults are the reference architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage1Config {
    /// Frame height, a multiple of 16.
    pub height: usize,
    /// Frame width, a multiple of 16.
    pub width: usize,
    /// Sensor columns D.
    pub sensor_dim: usize,
    /// Readings per window T, a multiple of 4.
    pub window: usize,
    /// Output channels of the four stride-2 camera convolutions.
    pub camera_channels: [usize; 4],
    /// Output channels of the three sensor convolutions (k3 s1, k4 s2, k4 s2).
    pub sensor_channels: [usize; 3],
    /// The encoders' kind; runs saved before it existed have convolutional ones.
    #[serde(default)]
    pub encoder: EncoderKind,
}

/// How the stage-1 encoders are built. The decoders are convolutional either way, and the
/// latent has the same size, so everything after the encoders is unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Strided convolutions (the reference architecture).
    #[default]
    Conv,
    /// Dense layers over the flattened input (input → 256 → latent, LeakyReLU between): the
    /// MMSSL ablation that loses the convolutions' locality (every latent value depends on
    /// every pixel, so a local fault spreads over the whole latent).
    Dense,
}

impl Stage1Config {
    /// The reference architecture for a given input geometry.
    pub fn new(height: usize, width: usize, sensor_dim: usize, window: usize) -> Self {
        Self {
            height,
            width,
            sensor_dim,
            window,
            camera_channels: [32, 64, 64, 32],
            sensor_channels: [64, 64, 32],
            encoder: EncoderKind::Conv,
        }
    }

    /// Values in the camera latent map: channels × H/16 × W/16.
    pub fn camera_latent(&self) -> usize {
        self.camera_channels[3] * (self.height / 16) * (self.width / 16)
    }

    /// Values in the sensor latent map: channels × T/4.
    pub fn sensor_latent(&self) -> usize {
        self.sensor_channels[2] * (self.window / 4)
    }

    /// The flat camera latent as the map the decoders read: [B, camera_latent] → [B, C4, H/16, W/16].
    pub fn camera_map(&self, z_cam: Tensor<2>) -> Tensor<4> {
        let [b, _] = z_cam.dims();
        z_cam.reshape([b, self.camera_channels[3], self.height / 16, self.width / 16])
    }

    /// The flat sensor latent as the map the decoders read: [B, sensor_latent] → [B, C3, T/4].
    pub fn sensor_map(&self, z_sen: Tensor<2>) -> Tensor<3> {
        let [b, _] = z_sen.dims();
        z_sen.reshape([b, self.sensor_channels[2], self.window / 4])
    }

    /// Values in the joint latent z.
    pub fn joint_latent(&self) -> usize {
        self.camera_latent() + self.sensor_latent()
    }

    /// Builds the autoencoder with fresh weights.
    pub fn init(&self, device: &Device) -> Stage1 {
        let c = self.camera_channels;
        let s = self.sensor_channels;
        let (down, up) = (|i, o| conv::down2d(i, o, device), |i, o| conv::up2d(i, o, device));
        let (down1, up1, same1) =
            (|i, o| conv::down1d(i, o, device), |i, o| conv::up1d(i, o, device), |i, o| conv::same1d(i, o, device));
        let conv = self.encoder == EncoderKind::Conv;
        let dense = |i: usize, o: usize| DenseEncoder {
            hidden: LinearConfig::new(i, DENSE_HIDDEN).init(device),
            out: LinearConfig::new(DENSE_HIDDEN, o).init(device),
        };
        Stage1 {
            cam_enc: conv.then(|| CameraEncoder {
                c1: down(3, c[0]),
                c2: down(c[0], c[1]),
                c3: down(c[1], c[2]),
                c4: down(c[2], c[3]),
            }),
            cam_dec: CameraDecoder { t1: up(c[3], c[2]), t2: up(c[2], c[1]), t3: up(c[1], c[0]), t4: up(c[0], 3) },
            sen_enc: conv.then(|| SensorEncoder {
                c1: same1(self.sensor_dim, s[0]),
                c2: down1(s[0], s[1]),
                c3: down1(s[1], s[2]),
            }),
            sen_dec: SensorDecoder { t1: up1(s[2], s[1]), t2: up1(s[1], s[0]), c3: same1(s[0], self.sensor_dim) },
            dense_enc: (!conv).then(|| DenseEncoders {
                camera: dense(3 * self.height * self.width, self.camera_latent()),
                sensor: dense(self.sensor_dim * self.window, self.sensor_latent()),
            }),
        }
    }
}

/// Camera encoder: four stride-2 convolutions, [B, 3, H, W] → [B, C, H/16, W/16].
#[derive(Module, Debug)]
pub struct CameraEncoder {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    c4: Conv2d,
}

impl CameraEncoder {
    /// # Shapes
    /// [B, 3, H, W] → [B, C4, H/16, W/16]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [c1, c2, c3, c4] = [&self.c1, &self.c2, &self.c3, &self.c4].map(Layer2d::Conv);
        chain2d(x, &[(c1, Act::Lrelu), (c2, Act::Lrelu), (c3, Act::Lrelu), (c4, Act::Linear)])
    }
}

/// Camera decoder: four stride-2 transposed convolutions and a sigmoid.
#[derive(Module, Debug)]
pub struct CameraDecoder {
    t1: ConvTranspose2d,
    t2: ConvTranspose2d,
    t3: ConvTranspose2d,
    t4: ConvTranspose2d,
}

impl CameraDecoder {
    /// # Shapes
    /// [B, C4, H/16, W/16] → [B, 3, H, W], values in (0, 1)
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let [t1, t2, t3, t4] = [&self.t1, &self.t2, &self.t3, &self.t4].map(Layer2d::Transposed);
        chain2d(z, &[(t1, Act::Lrelu), (t2, Act::Lrelu), (t3, Act::Lrelu), (t4, Act::Sigmoid)])
    }
}

/// Sensor encoder over a window, channels = sensor columns: [B, D, T] → [B, C3, T/4].
#[derive(Module, Debug)]
pub struct SensorEncoder {
    c1: Conv1d,
    c2: Conv1d,
    c3: Conv1d,
}

impl SensorEncoder {
    /// # Shapes
    /// [B, D, T] → [B, C3, T/4]
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [c1, c2, c3] = [&self.c1, &self.c2, &self.c3].map(Layer1d::Conv);
        chain1d(x, &[(c1, Act::Lrelu), (c2, Act::Lrelu), (c3, Act::Linear)])
    }
}

/// Sensor decoder, the mirror of [`SensorEncoder`]; linear output (faulty inputs leave [0, 1]).
#[derive(Module, Debug)]
pub struct SensorDecoder {
    t1: ConvTranspose1d,
    t2: ConvTranspose1d,
    c3: Conv1d,
}

impl SensorDecoder {
    /// # Shapes
    /// [B, C3, T/4] → [B, D, T]
    pub fn forward(&self, z: Tensor<3>) -> Tensor<3> {
        let (t1, t2, c3) = (Layer1d::Transposed(&self.t1), Layer1d::Transposed(&self.t2), Layer1d::Conv(&self.c3));
        chain1d(z, &[(t1, Act::Lrelu), (t2, Act::Lrelu), (c3, Act::Linear)])
    }
}

/// Width of the hidden layer of a dense encoder.
const DENSE_HIDDEN: usize = 256;

/// A dense encoder of one modality: flattened input → 256 → latent.
#[derive(Module, Debug)]
pub struct DenseEncoder {
    hidden: Linear,
    out: Linear,
}

impl DenseEncoder {
    /// # Shapes
    /// [B, n] → [B, latent]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(lrelu(self.hidden.forward(x)))
    }
}

/// The dense encoders of both modalities ([`EncoderKind::Dense`]).
#[derive(Module, Debug)]
pub struct DenseEncoders {
    /// Flattened frame → camera latent.
    pub camera: DenseEncoder,
    /// Flattened window → sensor latent.
    pub sensor: DenseEncoder,
}

/// The stage-1 autoencoder: one encoder and one decoder per modality. The encoders are either
/// the convolutional pair (`cam_enc`, `sen_enc`) or `dense_enc`, as the configuration's
/// [`EncoderKind`] says; the weights file names only the ones that exist.
#[derive(Module, Debug)]
pub struct Stage1 {
    /// Convolutional camera encoder.
    pub cam_enc: Option<CameraEncoder>,
    /// Camera decoder.
    pub cam_dec: CameraDecoder,
    /// Convolutional sensor encoder.
    pub sen_enc: Option<SensorEncoder>,
    /// Sensor decoder.
    pub sen_dec: SensorDecoder,
    /// Dense encoders of both modalities.
    pub dense_enc: Option<DenseEncoders>,
}

impl Stage1 {
    /// Encodes both modalities into the flat joint latent z = [camera map, sensor map].
    ///
    /// # Shapes
    /// camera [B, 3, H, W], sensor [B, D, T] → z [B, camera_latent + sensor_latent]
    pub fn encode(&self, camera: Tensor<4>, sensor: Tensor<3>) -> Tensor<2> {
        Tensor::cat(vec![self.encode_camera(camera), self.encode_sensor(sensor)], 1)
    }

    /// Camera part of the joint latent, flattened: [B, 3, H, W] → [B, camera_latent].
    pub fn encode_camera(&self, camera: Tensor<4>) -> Tensor<2> {
        match (&self.cam_enc, &self.dense_enc) {
            (Some(conv), _) => conv.forward(camera).flatten(1, 3),
            (None, Some(dense)) => dense.camera.forward(camera.flatten(1, 3)),
            (None, None) => unreachable!("Stage1Config::init builds one kind of encoder"),
        }
    }

    /// Sensor part of the joint latent, flattened: [B, D, T] → [B, sensor_latent].
    pub fn encode_sensor(&self, sensor: Tensor<3>) -> Tensor<2> {
        match (&self.sen_enc, &self.dense_enc) {
            (Some(conv), _) => conv.forward(sensor).flatten(1, 2),
            (None, Some(dense)) => dense.sensor.forward(sensor.flatten(1, 2)),
            (None, None) => unreachable!("Stage1Config::init builds one kind of encoder"),
        }
    }

    /// Decodes the camera part of a joint latent: [B, camera_latent] → [B, 3, H, W].
    pub fn decode_camera(&self, z_cam: Tensor<2>, cfg: &Stage1Config) -> Tensor<4> {
        self.cam_dec.forward(cfg.camera_map(z_cam))
    }

    /// Decodes the sensor part of a joint latent: [B, sensor_latent] → [B, D, T].
    pub fn decode_sensor(&self, z_sen: Tensor<2>, cfg: &Stage1Config) -> Tensor<3> {
        self.sen_dec.forward(cfg.sensor_map(z_sen))
    }
}
