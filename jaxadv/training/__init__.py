"""Training and evaluating victims: small classifiers (and the cached default victims), saliency
models on fixation data (content losses, resumable orbax checkpoints), and the saliency benchmark
scores and tables, and the Meta Attack's meta attacker (gradient tasks of surrogates, Reptile /
first-order MAML meta-training, a cached default). The models themselves are in
:mod:`jaxadv.models`."""

from jaxadv.training._classifier import accuracy as accuracy
from jaxadv.training._classifier import random_shift as random_shift
from jaxadv.training._classifier import train_classifier as train_classifier
from jaxadv.training._default import cached_victim as cached_victim
from jaxadv.training._default import default_victim as default_victim
from jaxadv.training._small_relu import small_relu_victim as small_relu_victim
# Papernot et al.'s substitute training (black-box, label queries only)
from jaxadv.training._substitute import JACOBIANS as JACOBIANS
from jaxadv.training._substitute import SubstituteRecord as SubstituteRecord
from jaxadv.training._substitute import SubstituteTraining as SubstituteTraining
from jaxadv.training._substitute import jacobian_augmentation as jacobian_augmentation
from jaxadv.training._substitute import periodic_step_size as periodic_step_size
from jaxadv.training._substitute import train_substitute as train_substitute
from jaxadv.training._saliency_data import fixation_counts as fixation_counts
from jaxadv.training._saliency_data import mean_density as mean_density
from jaxadv.training._saliency_eval import SALIENCY_METRIC_NAMES as SALIENCY_METRIC_NAMES
from jaxadv.training._saliency_eval import center_bias_baselines as center_bias_baselines
from jaxadv.training._saliency_eval import evaluate_saliency as evaluate_saliency
from jaxadv.training._saliency_eval import evaluate_saliency_maps as evaluate_saliency_maps
from jaxadv.training._saliency_eval import format_saliency_table as format_saliency_table
from jaxadv.training._saliency_eval import predict_saliency as predict_saliency
from jaxadv.training._saliency_loss import SALIENCY_LOSS_PRESETS as SALIENCY_LOSS_PRESETS
from jaxadv.training._saliency_loss import SALIENCY_LOSS_TERMS as SALIENCY_LOSS_TERMS
from jaxadv.training._saliency_loss import resolve_saliency_loss as resolve_saliency_loss
from jaxadv.training._saliency_loss import saliency_image_loss as saliency_image_loss
from jaxadv.training._saliency_train import SaliencyTraining as SaliencyTraining
from jaxadv.training._saliency_train import train_saliency as train_saliency
from jaxadv.training._saliency_zoo import train_zoo_saliency as train_zoo_saliency
# Adversarial training (Madry et al. 2018 AT, TRADES) with any attack inside the train step
from jaxadv.training._adversarial import EVAL_STEPS as EVAL_STEPS
from jaxadv.training._adversarial import TRAIN_STEPS as TRAIN_STEPS
from jaxadv.training._adversarial import AdversarialTraining as AdversarialTraining
from jaxadv.training._adversarial import train_adversarial as train_adversarial
from jaxadv.training._trades import TradesKL as TradesKL
from jaxadv.training._trades import kl_divergence as kl_divergence
from jaxadv.training._trades import trades_attack as trades_attack
from jaxadv.training._trades import trades_loss as trades_loss
# Gaussian-noise augmentation: the base classifiers of randomized smoothing (issue 17, helper D)
from jaxadv.training._noise import gaussian_noise as gaussian_noise
# Meta Attack (issue 16): gradient tasks of surrogates and meta-training (Reptile, MAML)
from jaxadv.training._meta_data import ESTIMATORS as ESTIMATORS
from jaxadv.training._meta_data import GradientTask as GradientTask
from jaxadv.training._meta_data import collect_gradients as collect_gradients
from jaxadv.training._meta_data import load_gradient_task as load_gradient_task
from jaxadv.training._meta_data import save_gradient_task as save_gradient_task
from jaxadv.training._meta_train import META_METHODS as META_METHODS
from jaxadv.training._meta_train import MetaTraining as MetaTraining
from jaxadv.training._meta_train import meta_train as meta_train
from jaxadv.training._meta_train import predict_gradients as predict_gradients
from jaxadv.training._meta_default import DEFAULT_SURROGATES as DEFAULT_SURROGATES
from jaxadv.training._meta_default import META_DATASETS as META_DATASETS
from jaxadv.training._meta_default import SURROGATE_NAMES as SURROGATE_NAMES
from jaxadv.training._meta_default import default_meta_attacker as default_meta_attacker
from jaxadv.training._meta_default import meta_dataset as meta_dataset
from jaxadv.training._meta_default import held_out_cosine as held_out_cosine
from jaxadv.training._meta_default import restore_meta_attacker as restore_meta_attacker
from jaxadv.training._meta_default import save_meta_attacker as save_meta_attacker
from jaxadv.training._meta_default import surrogate as surrogate
from jaxadv.training._meta_default import surrogate_tasks as surrogate_tasks
# Video victims trained on the moving digits (issue 16)
from jaxadv.training._video_default import VideoSplits as VideoSplits
from jaxadv.training._video_default import default_video_victim as default_video_victim
from jaxadv.training._video_default import moving_digits_splits as moving_digits_splits
# Issue 22 (transfer): universal perturbations, adversarial patches, LGV surrogates
from jaxadv.training._universal import UniversalPerturbation as UniversalPerturbation
from jaxadv.training._universal import universal_perturbation as universal_perturbation
from jaxadv.training._patch import PatchTraining as PatchTraining
from jaxadv.training._patch import adversarial_patch as adversarial_patch
from jaxadv.training._lgv import collect_lgv as collect_lgv
from jaxadv.training._lgv import lgv_surrogates as lgv_surrogates
from jaxadv.training._lgv import lgv_victim as lgv_victim
# LGV, the paper's attack form (one random member per step)
from jaxadv.training._lgv import lgv_member_index as lgv_member_index
from jaxadv.training._lgv import lgv_random_victim as lgv_random_victim
