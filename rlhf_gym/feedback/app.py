"""The labelling web app (Starlette, server-rendered): ``rlhf-gym label serve`` runs it under uvicorn.

Security model: every request needs an annotator's token, from the ``rlhf_label_token`` cookie (set by the
login form, HttpOnly, SameSite=Strict) or from ``?token=`` (which sets the cookie and redirects to the
same page without it). Pages redirect to ``/login`` without one; everything else answers 401. An annotator
sees and changes only their own labels; the store is keyed by (item, annotator from the token), so no
form field can name another annotator. Every page is escaped by Jinja2 and sent with a
Content-Security-Policy that runs only the page's own inline script.

>>> import tempfile
>>> from starlette.testclient import TestClient
>>> from rlhf_gym.feedback.items import Item
>>> from rlhf_gym.feedback.store import LabelStore
>>> store = LabelStore(tempfile.mkdtemp() + "/labels.sqlite")
>>> token = store.add_annotator("ann"); _ = store.add_items([Item("Q:", (" a", " b"))])
>>> client = TestClient(create_app(store, shuffle=False))
>>> client.get("/labels.jsonl").status_code
401
>>> client.post("/label", data={"item_id": "1", "choice": "b"}, params={"token": token},
...             follow_redirects=False).status_code  # stored, on to the next item
303
>>> [label.choice for label in store.labels()]
['b']
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rlhf_gym.errors import DataError
from rlhf_gym.feedback.pages import GUIDELINES, render
from rlhf_gym.feedback.select import select_next
from rlhf_gym.feedback.store import CHOICES, Annotator, LabelStore

__all__ = ["create_app", "COOKIE"]

COOKIE = "rlhf_label_token"
MAX_TEXT = 20_000  # longest feedback or edited answer kept
_ANSWERS = {"a": "A better", "b": "B better", "tie": "tie", "both_bad": "both bad"}


def _csp(nonce: str) -> str:
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    response = HTMLResponse(render(template, nonce=nonce, **context), status_code=status)
    response.headers.update({"Content-Security-Policy": _csp(nonce), "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
    return response


def create_app(store: LabelStore, *, overlap: int = 1, mode: str = "random",
               scores: Mapping[int, Sequence[Sequence[float]]] | None = None, seed: int | None = None,
               guidelines: str = GUIDELINES, shuffle: bool = True) -> Starlette:
    """The app over ``store``: each item goes to ``overlap`` annotators, picked by ``mode`` (``random`` or
    ``uncertainty`` over ``scores``: item id -> per reward model, per candidate scores). With ``shuffle``
    each annotator sees an item's candidates in an order of their own (:func:`display_order`), so no text
    is always on the left; labels are stored in the file's order either way."""
    rng = random.Random(seed)

    def authenticate(request: Request) -> Annotator | Response:
        """The annotator, or the response that refuses (or redirects) the request."""
        query_token = request.query_params.get("token")
        if query_token is not None:
            annotator = store.annotator_for(query_token)
            if annotator is None:
                return _page("login", 401, title="Log in", error="That token is not valid.")
            if request.method == "GET":  # drop the token from the address bar (and from history)
                url = request.url.remove_query_params("token")  # relative, and never "//host": same host
                path = "/" + url.path.lstrip("/")
                response: Response = RedirectResponse(path + (f"?{url.query}" if url.query else ""), status_code=303)
                _set_cookie(response, query_token)
                return response
            return annotator
        annotator = store.annotator_for(request.cookies.get(COOKIE))
        if annotator is not None:
            return annotator
        if request.method == "GET" and "text/html" in request.headers.get("accept", "text/html"):
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"error": "a valid annotator token is required"}, status_code=401)

    def progress(annotator: Annotator) -> dict[str, int]:
        items, counts = store.items(), store.label_counts()
        done = {label.item_id for label in store.labels(annotator.id)}
        left = sum(1 for s in items if s.id not in done and counts.get(s.id, 0) < overlap)
        return {"mine": len(done), "left": left, "total": len(items), "overlap": overlap}

    def show(annotator: Annotator, item_id: int, status: int = 200) -> Response:
        stored = store.item(item_id)
        if stored is None:
            return _page("message", 404, title="No such item", message=f"There is no item {item_id}.", me=annotator.name)
        previous = store.label_of(item_id, annotator.id)
        ranking = stored.item.kind == "ranking"
        names = [f"Candidate {i + 1}" for i in range(len(stored.item.candidates))] if ranking else ["A", "B"]
        order = display_order(item_id, annotator.id, len(stored.item.candidates), shuffle)
        shown = replace(stored.item, candidates=tuple(stored.item.candidates[i] for i in order))
        previous_ranking = (",".join(str(order.index(i) + 1) for i in previous.ranking)
                            if previous and previous.ranking else "")
        return _page("item", status, title=f"Item {item_id}", me=annotator.name, item=shown, item_id=item_id,
                     names=names, ranking=ranking, previous=previous, previous_ranking=previous_ranking,
                     shown=f"{time.time():.3f}", progress=progress(annotator), guidelines=guidelines)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _page("login", title="Log in", error=None)
        form = await request.form()
        token = str(form.get("token", ""))
        if store.annotator_for(token) is None:
            return _page("login", 401, title="Log in", error="That token is not valid.")
        response = RedirectResponse("/", status_code=303)
        _set_cookie(response, token)
        return response

    def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def next_item(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        done = {label.item_id for label in store.labels(annotator.id)}
        choice = select_next([s.id for s in store.items()], store.label_counts(), done, overlap=overlap,
                             scores=scores, mode=mode, rng=rng)
        if choice is None:
            return _page("done", title="Done", me=annotator.name, progress=progress(annotator))
        return show(annotator, choice)

    def item_page(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        return show(annotator, request.path_params["item_id"])

    async def label(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        form = await request.form()
        return await run_in_threadpool(store_label, annotator, form)  # the commit's fsync must not stall the loop

    def store_label(annotator: Annotator, form: Mapping[str, Any]) -> Response:
        try:
            item_id, fields = _label_fields(form)
            stored = store.item(item_id)
            if stored is None:
                raise DataError(f"no item {item_id}")
            mine = store.label_of(item_id, annotator.id) is not None
            if not mine and store.label_counts().get(item_id, 0) >= overlap:
                return _page("message", 409, title="Already labelled", me=annotator.name,
                             message=f"Item {item_id} already has its {overlap} label(s); your answer was not stored.")
            order = display_order(item_id, annotator.id, len(stored.item.candidates), shuffle)
            if stored.item.kind == "ranking":  # shown positions -> the file's candidate indices
                fields["ranking"] = [order[d] for d in _parse_ranking(str(form.get("ranking", "")), len(order))]
            else:
                choice = str(form.get("choice", ""))
                fields["choice"] = "ab"[order["ab".index(choice)]] if choice in ("a", "b") else choice
            store.add_label(item_id, annotator.id, **fields)  # committed before we answer
        except DataError as e:
            return _page("message", 400, title="Not stored", message=str(e), me=annotator.name)
        return RedirectResponse("/", status_code=303)

    def my_labels(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        items = {s.id: s.item for s in store.items()}
        rows = [{"item_id": lab.item_id, "prompt": items[lab.item_id].prompt, "feedback": lab.feedback,
                 "answer": _ANSWERS.get(lab.choice or "", "") or "order " + ",".join(str(i + 1) for i in lab.ranking or ())}
                for lab in store.labels(annotator.id)]
        return _page("labels", title="My labels", me=annotator.name, rows=rows)

    def my_labels_jsonl(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        lines = [json.dumps({"item_id": lab.item_id, "choice": lab.choice,
                             "ranking": list(lab.ranking) if lab.ranking else None, "feedback": lab.feedback,
                             "edited": lab.edited, "seconds": lab.seconds}, ensure_ascii=False)
                 for lab in store.labels(annotator.id)]
        return Response("".join(line + "\n" for line in lines), media_type="application/x-ndjson",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    def guide(request: Request) -> Response:
        annotator = authenticate(request)
        if isinstance(annotator, Response):
            return annotator
        return _page("guidelines", title="Guidelines", me=annotator.name, guidelines=guidelines)

    routes = [Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout),
              Route("/", next_item), Route("/item/{item_id:int}", item_page), Route("/label", label, methods=["POST"]),
              Route("/labels", my_labels), Route("/labels.jsonl", my_labels_jsonl), Route("/guidelines", guide)]
    return Starlette(routes=routes)


def display_order(item_id: int, annotator_id: int, k: int, shuffle: bool = True) -> list[int]:
    """The order (candidate indices) in which ``annotator_id`` sees item ``item_id``'s ``k`` candidates: the
    same on every visit, different across annotators and items; the file's order without ``shuffle``.

    >>> display_order(1, 1, 2, shuffle=False)
    [0, 1]
    >>> sorted(display_order(7, 3, 4))
    [0, 1, 2, 3]
    """
    order = list(range(k))
    if shuffle:
        random.Random(f"{item_id}:{annotator_id}").shuffle(order)
    return order


def _set_cookie(response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", max_age=30 * 24 * 3600)


def _label_fields(form: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = str(form.get("item_id", ""))
    if not raw.isdigit():
        raise DataError(f"item_id must be a number, got {raw[:40]!r}")
    fields: dict[str, Any] = {}
    for name in ("feedback", "edited"):
        text = str(form.get(name, "")).replace("\r\n", "\n")  # browsers send CRLF from text boxes
        text = text.strip() if name == "feedback" or not text.strip() else text  # an edit keeps its spaces
        if len(text) > MAX_TEXT:
            raise DataError(f"{name} is longer than {MAX_TEXT} characters")
        fields[name] = text
    try:
        shown = float(str(form.get("shown", "")))
        fields["seconds"] = min(max(time.time() - shown, 0.0), 3600.0)
    except ValueError:
        fields["seconds"] = None
    choice = form.get("choice")
    if choice is not None and str(choice) not in CHOICES:
        raise DataError(f"choice must be one of {', '.join(CHOICES)}, got {str(choice)[:40]!r}")
    return int(raw), fields


def _parse_ranking(text: str, k: int) -> list[int]:
    """``"2,1,3"`` (1-based candidate numbers, best first) as 0-based indices; every candidate exactly once."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if not all(p.isdigit() for p in parts) or sorted(int(p) for p in parts) != list(range(1, k + 1)):
        raise DataError(f"a ranking must name each of the {k} candidates once, best first (e.g. "
                        f"{','.join(str(i) for i in range(1, k + 1))}); got {text[:40]!r}")
    return [int(p) - 1 for p in parts]
