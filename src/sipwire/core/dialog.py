"""Dialogs (RFC 3261 §12) and the outputs user-agent cores queue for the shell, sans-IO.

* :class:`Dialog` -- the dialog state of §12.1: the dialog ID (Call-ID, local tag, remote
  tag), local and remote URI, local and remote CSeq numbers, the remote target, the route
  set and the secure flag.  :meth:`Dialog.uac` (§12.1.2) and :meth:`Dialog.uas` (§12.1.1)
  create one; :meth:`Dialog.create_request` builds in-dialog requests (§12.2.1.1, with the
  strict-router fix-up), :meth:`Dialog.create_ack` the ACK of a 2xx (§13.2.2.4);
  :meth:`Dialog.check_request` applies the UAS checks of §12.2.2 (500 for an out-of-order
  CSeq) and the target refresh.
* :class:`DialogSet` -- the dialogs one INVITE of ours creates when it forks: early
  dialogs from 1xx with a To tag, confirmed ones from 2xx (§12.1.2, §13.2.2.4), destroyed
  by a non-2xx final response (§13.2.2.3).
* :func:`session_key` -- what a user agent routes an in-dialog message by: the Call-ID
  and *our* tag (the To tag of a request we receive, the From tag of a response); the
  remote tag may differ between forks.  :func:`reject_out_of_dialog` builds the 481 for
  a request that matches nothing (§12.2.2).
* The outputs shared by :mod:`sipwire.core.invite` and :mod:`sipwire.core.registration`:
  :class:`SendRequest`, :class:`SendAck`, :class:`SendCancel`, :class:`SendResponse`.

Nothing here performs I/O or reads a clock.  Bad network input raises only
:class:`~sipwire.core._errors.RemoteProtocolError`.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.headervalues import CSEQ_MAX
from sipwire.core.message import Request, Response, make_response
from sipwire.core.uri import URI, SipURI

__all__ = [
    "DEFAULT_MAX_DIALOGS_PER_SET",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "Output",
    "SendAck",
    "SendCancel",
    "SendRequest",
    "SendResponse",
    "next_hop",
    "reject_out_of_dialog",
    "session_key",
]

#: Methods whose requests (and 2xx responses) replace the remote target (§12.2, RFC 3311 §5.1).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})

#: Dialogs one :class:`DialogSet` keeps (early + confirmed, from forking); beyond it the
#: oldest early or terminated dialog is forgotten (a 2xx still always gets a dialog).
DEFAULT_MAX_DIALOGS_PER_SET = 16

# Methods whose requests carry our Contact (target refresh and dialog-creating ones).
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


# ------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """Start a client transaction for ``request`` (it has no Via yet: the shell adds one
    with a fresh branch, e.g. ``Endpoint.send_request``).  Every response of that
    transaction -- provisionals, the final one, 2xx retransmissions, and a 408/503 the
    shell synthesizes for a timeout or transport failure -- goes back to the core's
    ``receive_response``.  ``next_hop`` is where §8.1.2 sends it: the first Route URI
    when it is a loose router, else the Request-URI (which is the strict router's URI
    after the §12.2.1.1 fix-up)."""

    request: Request
    next_hop: URI


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAck:
    """Send ``request``, the ACK of a 2xx, statelessly (it is its own transaction,
    §13.2.2.4/§17.1.1.3): the shell adds a Via with a new branch and sends it to
    ``next_hop`` (``Endpoint.send(ack, add_via=True)``).  A fresh copy each time, so the
    shell may change it."""

    request: Request
    next_hop: URI


@dataclass(frozen=True, slots=True, kw_only=True)
class SendCancel:
    """CANCEL the client transaction of ``invite`` -- the very Request object queued
    earlier in a :class:`SendRequest` -- (§9.1; ``Endpoint``'s ``ClientTransaction.cancel``):
    the transaction layer builds the CANCEL from the INVITE as sent, holds it until a
    provisional response has arrived and drops it if a final response comes first."""

    invite: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResponse:
    """Send ``response`` on the server transaction ``transaction`` (the opaque handle the
    shell passed in with the request; ``Endpoint``'s ``ServerTransaction.send``).  A 2xx
    to an INVITE is retransmitted by the shell until its ACK arrives (§13.3.1.4; the
    endpoint's ``TwoXXRetransmitter``)."""

    response: Response
    transaction: object


Output = SendRequest | SendAck | SendCancel | SendResponse


def next_hop(request: Request) -> URI:
    """Where §8.1.2 sends ``request``: its first Route URI if that is a loose router
    (``;lr``), else its Request-URI."""
    routes = request.route
    if routes and isinstance(routes[0].uri, SipURI) and routes[0].uri.lr:
        return routes[0].uri
    return request.uri


def session_key(message: Request | Response) -> tuple[str, str] | None:
    """``(Call-ID, our tag)`` of an in-dialog message we received, or None.

    A request names our tag in To (None when it has none: it creates a dialog or is out
    of any dialog); a response to our request names it in From.  Raises
    RemoteProtocolError if those headers are malformed.
    """
    if isinstance(message, Request):
        tag = message.to.tag
    else:
        tag = message.from_.tag
    if tag is None:
        return None
    return (message.call_id, tag)


def reject_out_of_dialog(request: Request) -> Response:
    """The 481 (Call/Transaction Does Not Exist) for an in-dialog request that matches no
    dialog (§12.2.2).  An ACK gets no response: do not call this for one."""
    if request.method == "ACK":
        raise LocalProtocolError("an ACK is never answered")
    return make_response(request, 481)


# ------------------------------------------------------------------------------- dialogs


@dataclass(frozen=True, slots=True)
class DialogId:
    """The dialog ID (§12): Call-ID, local tag, remote tag.  The remote tag is None only
    for an RFC 2543 peer that sent no From tag (§12.1.1)."""

    call_id: str
    local_tag: str
    remote_tag: str | None


class DialogState(enum.Enum):
    """§12: a dialog is early (created by a 1xx with a To tag) until a 2xx confirms it."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _without_tag(address: Address) -> Address:
    return address.without_param("tag") if address.has_param("tag") else address


def _strip_for_request_uri(uri: URI) -> URI:
    """A route URI made fit for a Request-URI (§12.2.1.1 strict routing, §19.1.1 Table 1:
    no ``method`` parameter and no headers)."""
    if not isinstance(uri, SipURI):
        return uri
    if uri.has_param("method"):
        uri = uri.without_param("method")
    return uri.replace(headers=()) if uri.headers else uri


def _first_contact(message: Request | Response) -> URI | None:
    contacts = message.contact
    return contacts[0].uri if contacts else None


class Dialog:
    """One dialog's state (§12.1); see the module docstring.

    Build it with :meth:`uac` or :meth:`uas`.  ``contact`` is our Contact (put in target
    refresh requests, §12.2.1.1).  ``random_below`` (default :func:`secrets.randbelow`)
    picks the first local CSeq number of a dialog we did not start (§8.1.1.5).
    """

    __slots__ = (
        "_random_below",
        "contact",
        "id",
        "is_uac",
        "local_seq",
        "local_uri",
        "remote_seq",
        "remote_target",
        "remote_uri",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        *,
        id: DialogId,
        local_uri: Address,
        remote_uri: Address,
        remote_target: URI,
        route_set: Sequence[Address] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        secure: bool = False,
        state: DialogState = DialogState.CONFIRMED,
        contact: Address | None = None,
        is_uac: bool = True,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self.id = id
        self.local_uri = _without_tag(local_uri)
        self.remote_uri = _without_tag(remote_uri)
        self.remote_target: URI = remote_target
        self.route_set: tuple[Address, ...] = tuple(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.state = state
        self.contact = contact
        self.is_uac = is_uac
        self._random_below = random_below

    def __repr__(self) -> str:
        tags = f"{self.id.local_tag}/{self.id.remote_tag}"
        return f"<Dialog {self.state.value} {self.id.call_id} {tags}>"

    # -- creation ------------------------------------------------------------------------

    @classmethod
    def uac(
        cls,
        request: Request,
        response: Response,
        *,
        contact: Address | None = None,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> Dialog:
        """The dialog a 101-299 ``response`` with a To tag creates for our ``request``
        (§12.1.2): early for a 1xx, confirmed for a 2xx.  Route set: the response's
        Record-Route in reverse order; remote target: its Contact (the Request-URI when the
        response has none -- a 2xx must have one, §13.3.1.4, but a call is better kept
        than lost).  RemoteProtocolError if the response has no To tag."""
        if not 101 <= response.status <= 299:
            raise LocalProtocolError("only a 101-299 response creates a dialog (§12.1)")
        remote_tag = response.to.tag
        if remote_tag is None:
            raise RemoteProtocolError("a dialog-creating response must have a To tag (§12.1.1)")
        local_tag = request.from_.tag
        if local_tag is None:
            raise LocalProtocolError("our request has no From tag (§8.1.1.3)")
        target = _first_contact(response)
        if target is None:
            target = request.uri
        return cls(
            id=DialogId(response.call_id, local_tag, remote_tag),
            local_uri=request.from_,
            remote_uri=request.to,
            remote_target=target,
            route_set=tuple(reversed(response.record_route)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=_is_secure(request.uri),
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            contact=contact,
            is_uac=True,
            random_below=random_below,
        )

    @classmethod
    def uas(
        cls,
        request: Request,
        *,
        local_tag: str,
        contact: Address | None = None,
        secure: bool | None = None,
        state: DialogState = DialogState.EARLY,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> Dialog:
        """The dialog our response with To tag ``local_tag`` creates for ``request``
        (§12.1.1).  Route set: the request's Record-Route in order; remote target: its
        Contact (RemoteProtocolError 400 if missing); remote CSeq: the request's; local
        CSeq empty.  ``secure`` defaults to "the Request-URI is a SIPS URI" (the shell
        passes False when it did not arrive over TLS)."""
        target = _first_contact(request)
        if target is None:
            raise RemoteProtocolError(f"a dialog-creating {request.method} needs a Contact")
        return cls(
            id=DialogId(request.call_id, local_tag, request.from_.tag),
            local_uri=request.to,
            remote_uri=request.from_,
            remote_target=target,
            route_set=tuple(request.record_route),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=_is_secure(request.uri) if secure is None else secure,
            state=state,
            contact=contact,
            is_uac=False,
            random_below=random_below,
        )

    # -- state changes -------------------------------------------------------------------

    @property
    def is_early(self) -> bool:
        return self.state is DialogState.EARLY

    @property
    def is_confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def confirm(self, response: Response | None = None) -> None:
        """Early -> confirmed.  For a UAC, ``response`` is the 2xx: the route set is
        recomputed from it and the remote target taken from its Contact (§13.2.2.4)."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("a terminated dialog cannot be confirmed")
        if response is not None and self.is_uac and self.state is DialogState.EARLY:
            self.route_set = tuple(reversed(response.record_route))
            target = _first_contact(response)
            if target is not None:
                self.remote_target = target
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def matches(self, message: Request | Response) -> bool:
        """Whether ``message`` (received by us) belongs to this dialog (§12.2.2)."""
        if isinstance(message, Request):
            ours, theirs = message.to.tag, message.from_.tag
        else:
            ours, theirs = message.from_.tag, message.to.tag
        return (
            message.call_id == self.id.call_id
            and ours == self.id.local_tag
            and theirs == self.id.remote_tag
        )

    def check_request(self, request: Request) -> int | None:
        """The UAS checks of §12.2.2 for an in-dialog ``request`` we received: returns 500
        when its CSeq number is not above the remote CSeq (out of order; ACK and CANCEL,
        which reuse their INVITE's number, are not checked), else records the number and,
        for a target refresh request with a Contact, replaces the remote target; None."""
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            return 500
        self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            target = _first_contact(request)
            if target is not None:
                self.remote_target = target
        return None

    def receive_response(self, response: Response) -> None:
        """§12.2.1.2: a 2xx to one of our target refresh requests replaces the remote
        target with its Contact, if present."""
        if 200 <= response.status < 300 and response.cseq.method in TARGET_REFRESH_METHODS:
            target = _first_contact(response)
            if target is not None:
                self.remote_target = target

    # -- building requests ---------------------------------------------------------------

    def next_local_seq(self) -> int:
        """Increment (or pick, §8.1.1.5, below 2**31) the local CSeq number (§12.2.1.1)."""
        if self.local_seq is None:
            self.local_seq = 1 + self._random_below(2**30)
        elif self.local_seq >= CSEQ_MAX:
            raise LocalProtocolError("the local CSeq number would exceed 2**31-1")
        else:
            self.local_seq += 1
        return self.local_seq

    def _routing(self) -> tuple[URI, list[Address]]:
        """Request-URI and Route values (§12.2.1.1)."""
        routes = list(self.route_set)
        if not routes:
            return self.remote_target, []
        first = routes[0].uri
        if isinstance(first, SipURI) and first.lr:
            return self.remote_target, routes
        # Strict router: its URI becomes the Request-URI, the remote target the last Route.
        return _strip_for_request_uri(first), [*routes[1:], Address(self.remote_target)]

    def _base_rows(self, seq: int, method: str, routes: list[Address]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = [("Route", str(r)) for r in routes]
        to = self.remote_uri
        if self.id.remote_tag is not None:
            to = to.with_tag(self.id.remote_tag)
        rows += [
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_tag(self.id.local_tag))),
            ("To", str(to)),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        return rows

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        contact: bool | None = None,
    ) -> Request:
        """A request within this dialog (§12.2.1.1): To/From from the dialog's URIs and
        tags, the Call-ID, the next local CSeq number, Request-URI and Route from the
        remote target and route set (a strict router first in the route set goes into the
        Request-URI and the remote target becomes the last Route), and our Contact for
        target refresh (and other dialog-usage) methods, or when ``contact`` is True.
        ``headers`` are appended as given.  No Via: the shell adds it."""
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not built with create_request (§13.2.2.4, §9.1)")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("the dialog is terminated")
        seq = self.next_local_seq()
        uri, routes = self._routing()
        rows = self._base_rows(seq, method, routes)
        if self.contact is not None and (
            contact if contact is not None else method in _CONTACT_METHODS
        ):
            rows.append(("Contact", str(self.contact)))
        rows.extend(headers)
        if content_type is not None:
            rows.append(("Content-Type", content_type))
        return Request(method, uri, rows, body)

    def create_ack(
        self,
        invite_seq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """The ACK of a 2xx to our INVITE with CSeq number ``invite_seq`` (§13.2.2.4):
        built like any in-dialog request but with the INVITE's CSeq number and method ACK,
        and not counted in the local CSeq.  ``headers`` carry the INVITE's credentials
        (§22.1: the ACK repeats them) and anything else to copy; ``body`` is the answer
        when the 2xx carried the offer."""
        uri, routes = self._routing()
        rows = self._base_rows(invite_seq, "ACK", routes)
        rows.extend(headers)
        if content_type is not None:
            rows.append(("Content-Type", content_type))
        return Request("ACK", uri, rows, body)


def _is_secure(uri: URI) -> bool:
    return isinstance(uri, SipURI) and uri.is_secure


# --------------------------------------------------------------------------- dialog sets


class DialogSet:
    """The dialogs created by one INVITE of ours (§12.1.2, §13.2.2.4, §19.3: each fork
    answers with its own To tag).

    :meth:`receive_response` takes every response to the INVITE: a 1xx with a To tag
    creates (or finds) an early dialog, a 2xx confirms its dialog or creates a confirmed
    one, a 300-699 terminates every early dialog (§13.2.2.3).  Bounded by
    ``max_dialogs`` (default :data:`DEFAULT_MAX_DIALOGS_PER_SET`): when full, the oldest
    early or terminated dialog is dropped; a 1xx that would need more room is ignored.
    After an authentication retry, :attr:`invite` is the new INVITE (same Call-ID and
    From tag, a higher CSeq).
    """

    def __init__(
        self,
        invite: Request,
        *,
        contact: Address | None = None,
        max_dialogs: int = DEFAULT_MAX_DIALOGS_PER_SET,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        if invite.method != "INVITE":
            raise LocalProtocolError("a dialog set belongs to an INVITE")
        if max_dialogs < 1:
            raise LocalProtocolError("max_dialogs must be at least 1")
        self.invite = invite
        self.contact = contact
        self.max_dialogs = max_dialogs
        self._random_below = random_below
        self._dialogs: OrderedDict[str, Dialog] = OrderedDict()

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def local_tag(self) -> str:
        tag = self.invite.from_.tag
        assert tag is not None
        return tag

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def get(self, remote_tag: str | None) -> Dialog | None:
        return None if remote_tag is None else self._dialogs.get(remote_tag)

    @property
    def early(self) -> list[Dialog]:
        return [d for d in self._dialogs.values() if d.is_early]

    @property
    def confirmed(self) -> list[Dialog]:
        """Confirmed dialogs, in the order their 2xx arrived."""
        return [d for d in self._dialogs.values() if d.is_confirmed]

    def _make_room(self) -> bool:
        if len(self._dialogs) < self.max_dialogs:
            return True
        for tag, dialog in self._dialogs.items():
            if not dialog.is_confirmed:
                del self._dialogs[tag]
                return True
        return False

    def receive_response(self, response: Response) -> Dialog | None:
        """Apply a response to the INVITE; returns the dialog it belongs to (None for a
        1xx without To tag, a 300-699, or a 1xx when the set is full)."""
        status = response.status
        if status >= 300:
            for existing in self._dialogs.values():
                if existing.is_early:
                    existing.terminate()
            return None
        tag = response.to.tag
        if tag is None or status == 100:
            if status >= 200:
                raise RemoteProtocolError("a 2xx to an INVITE must have a To tag (§12.1.1)")
            return None
        dialog = self._dialogs.get(tag)
        if dialog is None:
            if not self._make_room() and status < 200:
                return None
            dialog = Dialog.uac(
                self.invite, response, contact=self.contact, random_below=self._random_below
            )
            self._dialogs[tag] = dialog
            return dialog
        if status >= 200 and dialog.is_early:
            dialog.confirm(response)
        return dialog

    def forget(self, dialog: Dialog) -> None:
        """Drop ``dialog`` (e.g. a forked dialog once its BYE is done)."""
        if self._dialogs.get(dialog.id.remote_tag or "") is dialog:
            del self._dialogs[dialog.id.remote_tag or ""]
