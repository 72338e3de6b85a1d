"""Attack step rules as optax ``GradientTransformation``s (compose with ``optax.chain``)."""

from jaxadv.transforms._momentum import MIMomentumState as MIMomentumState
from jaxadv.transforms._momentum import mi_momentum as mi_momentum
from jaxadv.transforms._normalize import l1_steepest as l1_steepest
from jaxadv.transforms._normalize import normalize_by_l1_norm as normalize_by_l1_norm
from jaxadv.transforms._normalize import normalize_by_l2_norm as normalize_by_l2_norm
from jaxadv.transforms._normalize import sign as sign
from jaxadv.transforms._smoothing import smooth_updates as smooth_updates
