"""Image operators that attacks and figures build on: graph Laplacian smoothing, bilateral
filtering and adversarial magnification, superpixels, SSIM and MS-SSIM, foreground masks from
saliency maps."""

from jaxadv.image._bilateral import bilateral_filter as bilateral_filter
from jaxadv.image._bilateral import default_radius as default_radius
from jaxadv.image._bilateral import guided_bilateral_filter as guided_bilateral_filter
from jaxadv.image._graph import FEATURE_KERNELS as GRAPH_FEATURE_KERNELS
from jaxadv.image._graph import OFFSETS as GRAPH_OFFSETS
from jaxadv.image._graph import PixelGraph as PixelGraph
from jaxadv.image._graph import pixel_graph as pixel_graph
from jaxadv.image._magnify import magnified_to_unit as magnified_to_unit
from jaxadv.image._magnify import magnify as magnify
from jaxadv.image._smoothing import METHODS as SMOOTHING_METHODS
from jaxadv.image._smoothing import PRECONDITIONERS as SMOOTHING_PRECONDITIONERS
from jaxadv.image._smoothing import REDUCTIONS as SMOOTHING_REDUCTIONS
from jaxadv.image._smoothing import Smoother as Smoother
from jaxadv.image._smoothing import SmoothingNotConverged as SmoothingNotConverged
from jaxadv.image._smoothing import SolveStatus as SolveStatus
from jaxadv.image._smoothing import check_alpha as check_smoothing_alpha
from jaxadv.image._smoothing import check_preconditioner as check_smoothing_preconditioner
from jaxadv.image._smoothing import check_reduction as check_smoothing_reduction
from jaxadv.image._smoothing import check_warm_start as check_smoothing_warm_start
from jaxadv.image._smoothing import dense_laplacian as dense_laplacian
from jaxadv.image._smoothing import smoother as smoother
from jaxadv.image._smoothing import smoothness_penalty as smoothness_penalty
from jaxadv.image._smoothing import solve_laplacian as solve_laplacian
from jaxadv.image._sensitivity import WEIGHTINGS as SENSITIVITY_WEIGHTINGS
from jaxadv.image._sensitivity import check_weights as check_sensitivity_weights
from jaxadv.image._sensitivity import sensitivity_weights as sensitivity_weights
from jaxadv.image._superpixels import num_segments_bound as slic_num_segments_bound
from jaxadv.image._superpixels import slic as slic
from jaxadv.image._ssim import MS_SSIM_WEIGHTS as MS_SSIM_WEIGHTS
from jaxadv.image._ssim import PERCEPTUAL_DISTANCES as PERCEPTUAL_DISTANCES
from jaxadv.image._ssim import ms_ssim as ms_ssim
from jaxadv.image._ssim import ms_ssim_min_size as ms_ssim_min_size
from jaxadv.image._ssim import penalized as penalized
from jaxadv.image._ssim import perceptual_distance as perceptual_distance
from jaxadv.image._ssim import ssim as ssim
from jaxadv.image._ssim import ssim_budget as ssim_budget

# the orthonormal 2-D DCT-II (SimBA-DCT's basis)
from jaxadv.image._dct import dct2 as dct2
from jaxadv.image._dct import dct_matrix as dct_matrix
from jaxadv.image._dct import idct2 as idct2

# foreground masks from saliency maps (issue 17, part A)
from jaxadv.image._foreground import foreground_from_saliency as foreground_from_saliency

# motion maps and the bilinear warp (issue 16: the Motion-Excited Sampler)
from jaxadv.image._motion import WARP_COORDINATES as WARP_COORDINATES
from jaxadv.image._motion import check_video as check_video
from jaxadv.image._motion import frame_difference_motion as frame_difference_motion
from jaxadv.image._motion import optical_flow as optical_flow
from jaxadv.image._motion import sample_bilinear as sample_bilinear
from jaxadv.image._motion import warp as warp
from jaxadv.image._motion import warp_video as warp_video

# adversarial patches (issue 22): pasting by a mask, placements for expectation over transformation
from jaxadv.image._patch import Placement as Placement
from jaxadv.image._patch import apply_patch as apply_patch
from jaxadv.image._patch import check_patch as check_patch
from jaxadv.image._patch import check_placement_ranges as check_placement_ranges
from jaxadv.image._patch import sample_placement as sample_placement

# codec-style motion vectors (issue 16: the thesis compares them with optical flow)
from jaxadv.image._block_motion import block_motion_vectors as block_motion_vectors

# the 19 image transformations of the saliency paper, JPEG and Canny in JAX (issue 18)
from jaxadv.image._canny import canny as canny
from jaxadv.image._jpeg import jpeg as jpeg
from jaxadv.image._jpeg import quantization_tables as jpeg_quantization_tables
from jaxadv.image._transformations import INVALID_AUGMENTATIONS as INVALID_AUGMENTATIONS
from jaxadv.image._transformations import TRANSFORMATION_NAMES as TRANSFORMATION_NAMES
from jaxadv.image._transformations import VALID_AUGMENTATIONS as VALID_AUGMENTATIONS
from jaxadv.image._photometric import adjust_contrast as adjust_contrast
from jaxadv.image._geometric import affine_warp as affine_warp
from jaxadv.image._photometric import boundary as boundary
from jaxadv.image._geometric import crop_band as crop_band
from jaxadv.image._photometric import gaussian_noise as gaussian_noise
from jaxadv.image._photometric import motion_blur as motion_blur
from jaxadv.image._photometric import motion_kernel as motion_kernel
from jaxadv.image._geometric import rotate as rotate
from jaxadv.image._transformations import transform_density as transform_density
from jaxadv.image._transformations import transform_fixations as transform_fixations
from jaxadv.image._transformations import transform_image as transform_image
from jaxadv.image._transformations import transform_points as transform_points
# real codec motion vectors and video decoding through PyAV, optional (issue 16)
from jaxadv.image._codec_motion import codec_motion_vectors as codec_motion_vectors
from jaxadv.image._codec_motion import encode_video as encode_video
from jaxadv.image._codec_motion import have_pyav as have_pyav
from jaxadv.image._codec_motion import read_codec_motion as read_codec_motion
from jaxadv.image._codec_motion import read_video as read_video
