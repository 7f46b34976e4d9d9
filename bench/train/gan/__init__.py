"""The shared adversarial trainer of every GAN method (SPEC 2) and their base class.

A GAN method supplies a generator and a critic (:meth:`GANMethod.build_generator`,
:meth:`GANMethod.build_critic`), what one training batch holds (:meth:`GANMethod.draw`), its loss
terms (:meth:`GANMethod.d_loss`, :meth:`GANMethod.g_loss`), its critic schedule
(:meth:`GANMethod.critic_steps`) and its Adam settings (``Params``). Everything else is owned here,
identically for every method: the WGAN-GP gradient penalty (an eager double backward), the loop,
the optimizers, the device and DistributedDataParallel, optional bf16 autocast, logging, and
checkpoints that resume bit-exactly.

Modules: :mod:`~bench.train.gan.method` (``GANMethod``, ``GANParams``), :mod:`~bench.train.gan.hooks`
(``GANModel``: what the trainer uses of a method), :mod:`~bench.train.gan.trainer` (``GANTrainer``,
``train``), :mod:`~bench.train.gan.sampler` (``Sampler``), :mod:`~bench.train.gan.state` (checkpoint
state, resume check), :mod:`~bench.train.gan.log` (progress bar and loss log), :mod:`~bench.train.gan.curves`
(learning curves), :mod:`~bench.train.gan.recipe` (optimisation recipes), :mod:`~bench.train.gan.losses`
(penalty, L1, sums), :mod:`~bench.train.gan.sizes` (image-size checks of the networks). Imports run one
way: the method module imports the trainer, which knows methods only through ``GANModel``.

Counting: one *iteration* is one critic (discriminator) step. After ``critic_steps(g)`` critic
steps the generator takes its step number ``g`` on the same batch, so with 5 critic steps 100K
iterations make 20K generator steps. A run that ends inside a cycle ends without that cycle's
generator step.

Randomness: network initialisation uses the method's ``settings.seed`` (``train.seed``) under a forked
global RNG, and training seeds the global RNGs with ``ctx.settings.seed`` (the same value) as well;
everything drawn during training (batch indices, target domains, gradient-penalty mixing weights)
comes from one ``torch.Generator`` owned by the :class:`Sampler`. All ranks of a distributed run hold
the same generator state, draw ``world_size`` times a batch and keep their own slice, so every rank
sees distinct images and a checkpoint written by rank 0 restores every rank exactly.
``ctx.settings.batch_size`` is per process.

Precision: with ``ctx.settings.bf16`` the loss hooks (the forward passes) run under bf16 autocast;
backward passes run outside it, losses are summed in float32, and the gradient penalty's double
backward stays eager (nothing here is compiled). Translation and localization always run in fp32.
"""

from bench.train.gan.hooks import GANModel
from bench.train.gan.log import LOG_NAME, TrainLog
from bench.train.gan.losses import Batch, Network, Terms, gradient_penalty, l1, total
from bench.train.gan.method import GANMethod, GANParams, eval_mode
from bench.train.gan.sampler import IndexStream, Sampler
from bench.train.gan.sizes import check_size
from bench.train.gan.state import CHECKPOINT_FORMAT, CHECKPOINT_NAME, checkpoint_state, restore, resume_identity
from bench.train.gan.trainer import GANTrainer, frozen, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "Batch",
    "GANMethod",
    "GANModel",
    "GANParams",
    "GANTrainer",
    "IndexStream",
    "Network",
    "Sampler",
    "Terms",
    "TrainLog",
    "check_size",
    "checkpoint_state",
    "eval_mode",
    "frozen",
    "gradient_penalty",
    "l1",
    "restore",
    "resume_identity",
    "total",
    "train",
]
