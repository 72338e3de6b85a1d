"""Metrics of attacks on classifiers: accuracy, robust accuracy, success rate, norms."""

from jaxadv.metrics._classification import NORM_NAMES as NORM_NAMES
from jaxadv.metrics._classification import accuracy as accuracy
from jaxadv.metrics._classification import mean_norms as mean_norms
from jaxadv.metrics._classification import per_example_norms as per_example_norms
from jaxadv.metrics._classification import robust_accuracy as robust_accuracy
from jaxadv.metrics._classification import success_rate as success_rate
from jaxadv.metrics._classification import summarize as summarize
