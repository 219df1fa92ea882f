"""The declarative search space: dimensions that register themselves and declare their choices.

A :class:`Dimension` says which backends it applies to and, for each, the :class:`Choice` s it
offers (a parameter name and its values). ``build_candidate`` asks every dimension that applies
to the chosen backend, so a new dimension is one new module in this package. Choices may depend
on the study's :class:`SpaceContext` (device, level, backends), which is fixed when the study is
created: Optuna refuses a categorical whose choices change between trials.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import optuna

from backends import backend_class


@dataclasses.dataclass(frozen=True)
class SpaceContext:
    """What the choices of a study depend on; stored in the study and fixed for its life.

    Attributes:
        backends: Backends the study searches, in a fixed order.
        device: ``"cpu"`` or ``"gpu"``.
        level: ``"o1"`` or ``"o2"``.
        framework: The workload's framework.
        static_only: Only static-shape candidates (Blade's
            ``enable_static_shape_compilation_opt``).
        expensive: Also search the choices that cost minutes per candidate (``--expensive``):
            Inductor's max-autotune modes on the GPU, the larger MetaSchedule budgets.
        convolutions: The model holds convolution modules
            (:meth:`tuner.core.workload.Workload.has_convolutions`): cuDNN's choices apply.
        cuda_graphs: Offer CUDA-graph replay for eager and TorchScript
            (:mod:`search_space.cuda_graph`). Every new study sets it; a study created before the
            choice existed reads False, so its trials' stored params still decode (``FixedTrial``
            raises on a parameter it was not given).
        mixed: Offer autocast precisions and fp32 fallback at o2 (:mod:`search_space.precision`,
            :mod:`search_space.fp32_fallback`); False in studies created before they existed, for
            the same reason as ``cuda_graphs``.
        weights: Offer the choices of how the weights are held: channels-last memory format for
            convolution models (:mod:`search_space.channels_last`) and Inductor's freezing
            (:mod:`search_space.inductor_options`); False in studies created before they existed,
            for the same reason as ``cuda_graphs``.
        inductor_graphs: Offer CUDA-graph replay around Inductor's graph-less modes
            (:mod:`search_space.cuda_graph`); False in studies created before it existed, for the
            same reason as ``cuda_graphs``.
        unaligned_linears: The model holds a Linear layer whose output width cuBLAS cannot align
            (:func:`tuner.runtime.padding.has_unaligned`): padding it is offered
            (:mod:`search_space.pad_linear`); False in studies created before it existed, for the
            same reason as ``cuda_graphs``.
        excluded: Option values left out of the space because a backend cannot build them for
            this model (``Backend.refused_options``), ``((key, (value, ...)), ...)``.
    """

    backends: tuple[str, ...]
    device: str
    level: str
    framework: str = "torch"
    static_only: bool = False
    expensive: bool = False
    convolutions: bool = False
    cuda_graphs: bool = False
    mixed: bool = False
    weights: bool = False
    inductor_graphs: bool = False
    unaligned_linears: bool = False
    excluded: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (kept in the study's user attributes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpaceContext:
        """The inverse of :meth:`to_dict`."""
        excluded = tuple((key, tuple(values)) for key, values in data.get("excluded", ()))
        return cls(**{**data, "backends": tuple(data["backends"]), "excluded": excluded})


#: The backends that build from the torch model as the tuner prepares it
#: (:func:`tuner.runtime.models.prepared_model`), into a torch callable: the choices that change that
#: model (its weights' layout), the process around its calls (cuDNN's mode) or wrap the callable (CUDA
#: graphs) apply to them alone.
TORCH_BUILDERS: frozenset[str] = frozenset({"eager", "torchscript", "inductor"})


def torch_on_gpu(backend: str, ctx: SpaceContext) -> bool:
    """Whether a choice of :data:`TORCH_BUILDERS` applies: one of them, for a torch model, on the GPU."""
    return backend in TORCH_BUILDERS and ctx.device == "gpu" and ctx.framework == "torch"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One categorical parameter: its name in the study and its values.

    Attributes:
        key: Parameter name, ``"<backend>/<option>"``.
        values: The values, in a fixed order.
        doc: What the option does (shown by ``tune space``-like listings and in docs).
    """

    key: str
    values: tuple[Any, ...]
    doc: str = ""


class Dimension(abc.ABC):
    """A search dimension: the parameters it adds for one backend.

    Class attributes a subclass sets:
        name: The dimension's name (``"fusion"``, ``"precision"`` ...).
        order: Position among dimensions (parameters are suggested in this order).
        field: ``"shape_mode"`` or ``"precision"`` when the dimension sets that Candidate field
            instead of adding options.
    """

    name: ClassVar[str]
    order: ClassVar[int] = 50
    field: ClassVar[str | None] = None

    _registry: ClassVar[dict[str, type[Dimension]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Dimension._registry[cls.name] = cls

    @abc.abstractmethod
    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The parameters this dimension adds when ``backend`` is chosen (empty: none).

        Args:
            backend: The chosen backend.
            ctx: The study's fixed context.

        Returns:
            The choices, each suggested as a categorical.
        """

    def offered(self, backend: str, ctx: SpaceContext) -> list[Choice]:
        """:meth:`choices` without the values the study left out (``ctx.excluded``): what is searched."""
        excluded = dict(ctx.excluded)
        out = []
        for choice in self.choices(backend, ctx):
            values = tuple(v for v in choice.values if v not in excluded.get(choice.key, ()))
            out.append(dataclasses.replace(choice, values=values or choice.values))
        return out

    def asked(self, backend: str, params: dict[str, Any]) -> bool:
        """Whether this dimension applies, given the parameters suggested before it (default: always).

        Args:
            backend: The chosen backend.
            params: The trial's parameters so far.
        """
        return True

    def suggest(self, trial: optuna.trial.BaseTrial, backend: str, ctx: SpaceContext) -> dict[str, Any]:
        """Suggest this dimension's parameters for ``backend`` (none where :meth:`asked` says no).

        A choice with a single value is not suggested (it is not a decision), but still returned.

        Args:
            trial: The trial (a ``FixedTrial`` when rebuilding a stored config).
            backend: The chosen backend.
            ctx: The study's fixed context.

        Returns:
            ``{key: value}`` for every choice.
        """
        out: dict[str, Any] = {}
        if not self.asked(backend, dict(trial.params)):
            return out
        for choice in self.offered(backend, ctx):
            if len(choice.values) == 1:
                out[choice.key] = choice.values[0]
            else:
                out[choice.key] = trial.suggest_categorical(choice.key, list(choice.values))
        return out


def modes_for(backend: str, ctx: SpaceContext) -> tuple[str, ...]:
    """The shape modes searched for ``backend`` in this study (empty: the backend is excluded)."""
    modes = backend_class(backend).shape_modes
    return tuple(m for m in modes if m == "static") if ctx.static_only else modes
