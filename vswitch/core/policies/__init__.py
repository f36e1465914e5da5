"""Queue policies: schedulers, AQMs and shapers as `Scheduler` plug-ins, and a policer element.

Each scheduler plugs into a core `Queue` (``Queue(name, build_scheduler("drr",
weights="3,1"))``) and keeps the protocol of ``vswitch/core/scheduler.py``:
time only from ``now_ns``, declared counters and drop reasons, every buffer
bounded.  One small module per policy:

=================  ============================================================
``fifo`` & co.     core `Fifo` (pfifo, bfifo, pfifo_head_drop)
``prio.py``        ``pfifo_fast`` (Linux's three bands), ``prio`` (strict priority)
``rr.py``          ``rr`` (round robin), ``wrr`` (weighted, in packets)
``drr.py``         ``drr`` (deficit round robin, in bytes)
``wfq.py``         ``wfq`` (start-time fair queueing)
``tbf.py``         ``tbf`` (token-bucket shaper)
``htb.py``         ``htb`` (rate, ceil and borrowing over a class tree)
``red.py``         ``red`` (random early detection, ECN)
``codel.py``       ``codel`` (RFC 8289)
``fq_codel.py``    ``fq_codel`` (RFC 8290)
``policer.py``     `Policer`: srTCM/trTCM, an *element*, not a queue
=================  ============================================================

``classify.py`` puts frames in classes by a key the user names (port, pool,
VLAN, PCP, DSCP, Linux priority, 5-tuple hash); ``headers.py`` reads and
rewrites the IP header bits they need (DSCP, ECN CE) by slicing;
``params.py`` declares every parameter once; ``factory.py`` builds a policy
from its name and parameters (text or values) and describes them all.
docs/policies.md has a section per policy.
"""

from vswitch.core.policies.classify import Classifier
from vswitch.core.policies.codel import CoDel
from vswitch.core.policies.drr import Drr
from vswitch.core.policies.factory import KINDS, build_policer, build_scheduler, describe
from vswitch.core.policies.fq_codel import FqCodel
from vswitch.core.policies.htb import Htb
from vswitch.core.policies.params import Param, ParamError
from vswitch.core.policies.policer import Policer
from vswitch.core.policies.prio import PfifoFast, StrictPriority
from vswitch.core.policies.red import Red
from vswitch.core.policies.rr import RoundRobin, Wrr
from vswitch.core.policies.tbf import TokenBucket
from vswitch.core.policies.wfq import Wfq

__all__ = ["KINDS", "Classifier", "CoDel", "Drr", "FqCodel", "Htb", "Param", "ParamError", "PfifoFast", "Policer",
           "Red", "RoundRobin", "StrictPriority", "TokenBucket", "Wfq", "Wrr", "build_policer", "build_scheduler",
           "describe"]
