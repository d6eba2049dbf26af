"""The stateful proxy's response context (RFC 3261 §16.6-§16.10).

One :class:`ResponseContext` per proxied server transaction holds the target set, one
:class:`Branch` per forwarded copy (each a client transaction, with RFC 3263 failover
between its destinations), the final responses received, and timer C per INVITE
branch. Responses are processed as they arrive (the Endpoint's
``ClientTransaction.on_response`` callback, synchronously, in order):

* 100 is absorbed; other provisionals go upstream at once (§16.7 step 5) and restart
  timer C (§16.8).
* A 2xx goes upstream at once, every one of them (forks, retransmissions), and the other
  pending branches are cancelled (§16.7 step 10, §16.10).
* A 503 or a timeout before any provisional fails over to the branch's next destination
  (RFC 3263 §4.3).
* A 3xx's contacts join the target set when recursion is on (§16.7 step 4; the 3xx then
  loses those contacts, and is dropped if none is left); a 6xx stops everything (§16.7
  step 5).
* When no branch is left and no target waits, the best final response goes upstream
  (§16.7 step 6: 6xx first, then the lowest class; 503 becomes 500), carrying every
  challenge of the context's 401/407 responses (step 7).

Forking is parallel (every target at once) or sequential (one at a time in q order,
with ``181 Call Is Being Forwarded`` upstream when the next one starts).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sipwire.aio._transport_common import Destination
from sipwire.aio.endpoint import ClientTransaction, ServerTransaction
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.locate import LocationError
from sipwire.core.message import Request, Response, make_response
from sipwire.core.uri import URI, SipURI

from ._proxy_util import aggregate_challenges, best_response, without_503

if TYPE_CHECKING:
    from .proxy import Proxy

__all__ = ["Branch", "ResponseContext", "Target"]

_log = logging.getLogger("sipwire.proxy")

ForkMode = Literal["parallel", "sequential"]


@dataclass(slots=True, kw_only=True)
class Target:
    """One element of the target set (§16.5).

    ``uri``: the Request-URI of the forwarded copy. ``route``: Route values put first
    (a binding's Path, RFC 3327). ``destinations``: where to send first (a binding's
    source, for NAT); ``fallback_to_uri`` then adds the RFC 3263 targets of the
    Route/Request-URI. ``next_hops``: explicit next-hop URIs (static route, outbound
    proxy, hook), located in order; otherwise the first Route or the Request-URI is.
    """

    uri: URI
    route: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    fallback_to_uri: bool = False
    next_hops: tuple[SipURI, ...] = ()
    q: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True, eq=False)
class Branch:
    """One forwarded copy: its attempts over the target's destinations (§16.6)."""

    target: Target
    base: Request | None = None
    destinations: list[Destination] = field(default_factory=list)
    attempt: int = -1
    handle: ClientTransaction | None = None
    provisional: bool = False
    final: Response | None = None
    cancel_requested: bool = False
    timed_out: bool = False
    timer_c: asyncio.TimerHandle | None = None
    ring_timer: asyncio.TimerHandle | None = None

    def stop_timers(self) -> None:
        for timer in (self.timer_c, self.ring_timer):
            if timer is not None:
                timer.cancel()
        self.timer_c = self.ring_timer = None


class ResponseContext:
    """The state of one proxied request; see the module docstring."""

    def __init__(
        self,
        proxy: Proxy,
        tx: ServerTransaction,
        template: Request,
        *,
        fork: ForkMode,
        record_route: bool,
        loop: str,
        on_done: Callable[[ResponseContext], None],
    ) -> None:
        self.proxy = proxy
        self.tx = tx
        self.template = template
        self.fork = fork
        self.record_route = record_route
        self.loop = loop
        self.is_invite = template.method == "INVITE"
        self.pending: deque[Target] = deque()
        self.seen: set[str] = set()
        self.branches: list[Branch] = []
        self.responses: list[Response] = []
        self.final_sent = False
        self.got_2xx = False
        self.got_6xx = False
        self.cancelled = False
        self.busy = 0  # 3xx recursion lookups in flight
        self.done = False
        self._on_done = on_done

    # ------------------------------------------------------------------ target set

    def add_targets(self, targets: Iterable[Target]) -> int:
        """Add targets not already in the set (§16.5: a URI at most once), up to the
        proxy's ``max_targets``; returns how many were added."""
        added = 0
        for target in targets:
            key = _target_key(target.uri)
            if key in self.seen:
                continue
            if len(self.seen) >= self.proxy.max_targets:
                _log.info("target set of %s is full; dropping %s", self.template, target.uri)
                break
            self.seen.add(key)
            self.pending.append(target)
            added += 1
        return added

    def _active(self) -> list[Branch]:
        return [b for b in self.branches if b.final is None]

    def advance(self) -> None:
        """Start what may start now; finish when nothing is left (§16.7 step 6)."""
        if self.done:
            return
        if self.cancelled or self.got_2xx or self.got_6xx:
            self.pending.clear()
        elif self.fork == "parallel":
            while self.pending:
                self._start_branch(self.pending.popleft())
        elif self.pending and not self._active():
            self._start_branch(self.pending.popleft())
        if not self._active() and not self.pending and self.busy == 0:
            self._finish()

    def _start_branch(self, target: Target) -> None:
        if self.fork == "sequential" and self.branches and self.is_invite:
            self._provisional(181, "Call Is Being Forwarded")
        branch = Branch(target)
        self.branches.append(branch)
        self.proxy._spawn(self._run_branch(branch))

    async def _run_branch(self, branch: Branch) -> None:
        proxy = self.proxy
        try:
            base, hop = proxy._branch_request(self.template, branch.target)
            branch.base = base
            branch.destinations = await proxy._destinations(base, branch.target, hop)
        except LocationError as exc:
            reason = f"Cannot locate the next hop: {exc.reason}"[:200]
            self._record_final(branch, self._local(exc.status_hint, reason))
            return
        except (LocalProtocolError, RemoteProtocolError) as exc:
            self._record_final(branch, self._local(500, f"Cannot forward: {exc}"))
            return
        if self.cancelled or self.got_2xx or self.got_6xx:
            self._record_final(branch, self._local(487))
            return
        if self.is_invite and self.fork == "sequential" and proxy.sequential_timeout:
            branch.ring_timer = asyncio.get_running_loop().call_later(
                proxy.sequential_timeout, self._on_branch_timeout, branch
            )
        self._attempt(branch)

    def _attempt(self, branch: Branch) -> None:
        """Send the branch to its next destination (a new client transaction)."""
        assert branch.base is not None
        branch.attempt += 1
        attempt = branch.attempt
        destination = branch.destinations[attempt]
        copy = branch.base.copy()
        self.proxy._prepare_copy(
            copy,
            destination,
            inbound=self.tx.source,
            record_route=self.record_route,
            branch=self.proxy._new_branch(self.loop),
        )
        branch.provisional = False
        handle = self.proxy.endpoint.send_request(copy, destination=destination, add_via=False)
        handle.on_response = lambda response: self._on_response(branch, attempt, response)
        branch.handle = handle
        self.proxy.stats["forwarded"] += 1
        if self.is_invite and branch.timer_c is None:
            self._arm_timer_c(branch)

    # ------------------------------------------------------------------ responses

    def _on_response(self, branch: Branch, attempt: int, response: Response) -> None:
        if attempt != branch.attempt:
            return  # a late response of an attempt we failed over from
        response.headers.pop_first("Via")  # ours (§16.7 step 3)
        status = response.status
        if status < 200:
            branch.provisional = True
            if branch.cancel_requested:
                self._send_cancel(branch)
            if status == 100:
                return
            if branch.final is None and not branch.timed_out:
                self._arm_timer_c(branch)  # §16.8: restarted by every 101-199
            if not self.final_sent:
                self._forward(response)
            return
        if status < 300:
            self._on_2xx(branch, response)
            return
        if branch.final is not None:
            return  # already decided (timer C), or a duplicate
        more = branch.attempt + 1 < len(branch.destinations)
        if status in (408, 503) and not branch.provisional and more and not self.cancelled:
            _log.info("%s from %s: failing over", status, branch.destinations[branch.attempt])
            self._attempt(branch)  # RFC 3263 §4.3
            return
        self._record_final(branch, response)

    def _on_2xx(self, branch: Branch, response: Response) -> None:
        first = branch.final is None
        if first:
            branch.final = response
            branch.stop_timers()
        if not self.final_sent or (self.is_invite and self.got_2xx):
            self._forward(response)  # §16.7 step 9: every 2xx of an INVITE goes upstream
        elif first and not self.got_2xx:
            _log.warning("a 2xx arrived after a non-2xx final response was sent upstream")
        self.got_2xx = True
        if first:
            self._cancel_others(branch)
            self.advance()

    def _record_final(self, branch: Branch, response: Response) -> None:
        branch.final = response
        branch.stop_timers()
        if branch.timed_out and response.status == 487:
            response = self._local(408, "Request Timeout (no final response in time)")
        keep = True
        if 300 <= response.status < 400 and self.proxy.recurse_3xx:
            keep = self._recurse(response)
        if response.status >= 600:
            self.got_6xx = True
            self._cancel_others(branch)
        if keep:
            self.responses.append(response)
        self.advance()

    def _recurse(self, response: Response) -> bool:
        """§16.7 step 4: contacts of a 3xx join the target set (SIP/SIPS ones we have not
        tried); they are taken out of the response. False: nothing left to keep it for."""
        if self.cancelled or self.got_2xx or self.got_6xx:
            return True
        try:
            contacts = response.contact
        except RemoteProtocolError:
            return True
        taken: list[SipURI] = []
        kept: list[Address] = []
        for address in contacts:
            uri = address.uri
            if isinstance(uri, SipURI) and _target_key(uri) not in self.seen:
                taken.append(uri)
            else:
                kept.append(address)
        if not taken:
            return True
        original = response.copy()
        response.headers.remove("Contact")
        for address in kept:
            response.headers.add("Contact", str(address))
        self.busy += 1
        self.proxy._spawn(self._expand_and_add(taken, None if kept else original))
        return bool(kept)

    async def _expand_and_add(self, uris: list[SipURI], unkept: Response | None) -> None:
        """Add the 3xx's contacts; if none of them gives a target (an AOR of ours
        without bindings...), the 3xx joins the context after all."""
        added = 0
        try:
            targets = await self.proxy._expand_contacts(uris)
            added = self.add_targets(targets)
            if added and self.is_invite and not (self.cancelled or self.got_6xx):
                self._provisional(181, "Call Is Being Forwarded")
        finally:
            if not added and unkept is not None:
                self.responses.append(unkept)
            self.busy -= 1
            self.advance()

    # ------------------------------------------------------------------ timers, CANCEL

    def _arm_timer_c(self, branch: Branch) -> None:
        if branch.timer_c is not None:
            branch.timer_c.cancel()
        branch.timer_c = asyncio.get_running_loop().call_later(
            self.proxy.timer_c, self._on_branch_timeout, branch
        )

    def _on_branch_timeout(self, branch: Branch) -> None:
        """§16.8 timer C (and the sequential ring time): CANCEL a branch that had a
        provisional; one that had none counts as a 408 at once."""
        if branch.final is not None or self.done:
            return
        branch.timed_out = True
        branch.stop_timers()
        self.proxy.stats["timer_c_fired"] += 1
        self._cancel_branch(branch)
        if not branch.provisional:
            self._record_final(branch, self._local(408, "Request Timeout (timer C)"))

    def cancel(self) -> None:
        """The caller CANCELled the INVITE (§16.10): no new branches; CANCEL the pending
        ones. The INVITE is answered 487 once they are done."""
        if self.cancelled or self.final_sent:
            return
        self.cancelled = True
        self.pending.clear()
        for branch in self._active():
            self._cancel_branch(branch)
        self.advance()

    def _cancel_others(self, winner: Branch) -> None:
        for branch in self._active():
            if branch is not winner:
                self._cancel_branch(branch)

    def _cancel_branch(self, branch: Branch) -> None:
        if not self.is_invite:
            return
        branch.cancel_requested = True
        self._send_cancel(branch)

    def _send_cancel(self, branch: Branch) -> None:
        handle = branch.handle
        if handle is not None and handle.core is not None and not handle.done:
            self.proxy._spawn(handle.cancel())

    # ------------------------------------------------------------------ upstream

    def _local(self, status: int, reason: str | None = None) -> Response:
        return make_response(self.template, status, reason)

    def _provisional(self, status: int, reason: str) -> None:
        if self.final_sent:
            return
        self._forward(self.tx.make_response(status, reason))

    def _forward(self, response: Response) -> None:
        if response.status >= 200:
            self.final_sent = True
        self.proxy._spawn(self._send(response))

    async def _send(self, response: Response) -> None:
        try:
            await self.tx.send(response, retransmit_2xx=False)
        except LocalProtocolError as exc:
            _log.info("not forwarding %s upstream: %s", response.status, exc)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        for branch in self.branches:
            branch.stop_timers()
        if not self.final_sent:
            if self.cancelled:
                response = self._local(487)
            else:
                best = best_response(self.responses)
                if best is None:
                    response = self._local(408)  # §16.7 step 6: no final response at all
                else:
                    response = without_503(aggregate_challenges(best, self.responses))
            self.proxy.stats[f"final_{response.status}"] += 1
            self._forward(response)
        self._on_done(self)


def _target_key(uri: URI) -> str:
    """Identity of a target for "at most once" (§16.5): scheme, user, host, port and
    transport (parameters such as ``ob`` or tags do not make a new target)."""
    if isinstance(uri, SipURI):
        transport = (uri.transport or "").lower()
        return f"{uri.scheme}:{uri.user or ''}@{uri.host.lower()}:{uri.port or ''};{transport}"
    return str(uri)
