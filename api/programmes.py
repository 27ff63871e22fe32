"""Programmes, eligibility rules and lists: definitions, preview, build, read, export, diff, overlap."""

from __future__ import annotations

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from api import current_api_user
from models import db
from registry import access
from registry import households as hh
from targeting import eligibility as el
from targeting.eligibility_schemas import (
    EligibilityListBriefSchema,
    EligibilityListDetailSchema,
    EligibilityListEntriesArgs,
    EligibilityListSchema,
    HouseholdProgrammeListingSchema,
    ListDiffArgs,
    ListDiffSchema,
    PreviewInputSchema,
    ProgrammeInputSchema,
    ProgrammeListArgs,
    ProgrammeOverlapSchema,
    ProgrammePreviewSchema,
    ProgrammeSchema,
)

blp = Blueprint(
    "programmes_api", __name__, url_prefix="/api/v1", description="Programmes, eligibility rules and eligibility lists"
)


def _reader():
    user = current_api_user()
    el.require_reader(user)
    return user


@blp.route("/programmes")
class Programmes(MethodView):
    @blp.arguments(ProgrammeListArgs, location="query")
    @blp.response(200, ProgrammeSchema(many=True))
    def get(self, args):
        """Every programme (archived ones on request); readable by every role."""
        user = _reader()
        return [el.programme_view(p, user) for p in el.list_programmes(include_archived=args["include_archived"])]

    @blp.arguments(ProgrammeInputSchema)
    @blp.response(201, ProgrammeSchema)
    def post(self, data):
        """Create a programme (programme officers, for their own ministry and within their areas)."""
        user = current_api_user()
        programme = el.create_programme(data, user)
        db.session.commit()
        return el.programme_view(programme, user)


@blp.route("/programmes/overlap")
class Overlap(MethodView):
    @blp.response(200, ProgrammeOverlapSchema)
    def get(self):
        """How many households are on 1, 2, 3+ current lists, and on each pair of programmes (aggregates)."""
        return el.overlap_summary(_reader())


@blp.route("/programmes/<int:programme_id>")
class ProgrammeDetail(MethodView):
    @blp.response(200, ProgrammeSchema)
    def get(self, programme_id):
        """One programme with its current list."""
        user = _reader()
        return el.programme_view(el.get_programme(programme_id), user)

    @blp.arguments(ProgrammeInputSchema)
    @blp.response(200, ProgrammeSchema)
    def put(self, data, programme_id):
        """Replace a programme's definition (its officers only); its version goes up when anything changed."""
        user = current_api_user()
        programme = el.update_programme(el.get_programme(programme_id), data, user)
        db.session.commit()
        return el.programme_view(programme, user)


@blp.route("/programmes/<int:programme_id>/preview")
class ProgrammePreview(MethodView):
    @blp.arguments(PreviewInputSchema(partial=True))
    @blp.response(200, ProgrammePreviewSchema)
    def post(self, data, programme_id):
        """Count what a build would select now; rule parts in the body replace the saved ones (a draft)."""
        user = _reader()
        programme = el.get_programme(programme_id)
        try:
            return el.preview(programme, user, data)
        except el.EligibilityStateError as exc:
            abort(409, message=str(exc))


@blp.route("/programmes/<int:programme_id>/lists")
class ProgrammeLists(MethodView):
    @blp.response(200, EligibilityListBriefSchema(many=True))
    def get(self, programme_id):
        """Every list of the programme, newest first."""
        _reader()
        programme = el.get_programme(programme_id)
        lists = el.list_lists(programme)
        return [el.list_brief(lst, current=i == 0) for i, lst in enumerate(lists)]

    @blp.response(201, EligibilityListSchema)
    def post(self, programme_id):
        """Build and freeze the programme's next list from the current score run (its officers only)."""
        user = current_api_user()
        programme = el.get_programme(programme_id)
        try:
            lst = el.build_list(programme, user)
        except el.EligibilityStateError as exc:
            db.session.rollback()
            abort(409, message=str(exc))
        db.session.commit()
        return el.list_view(lst)


@blp.route("/lists/<int:list_id>")
class ListDetail(MethodView):
    @blp.arguments(EligibilityListEntriesArgs, location="query")
    @blp.response(200, EligibilityListDetailSchema)
    def get(self, args, list_id):
        """A list: frozen metadata, summary and a page of entries (within the caller's areas; ``area`` filters)."""
        user = _reader()
        lst = el.get_list(list_id)
        page = el.list_entries(lst, user, area=args["area"], page=args["page"], per_page=args["per_page"])
        return {
            "list": el.list_view(lst),
            "summary": el.list_summary(lst, user),
            "entries": {
                "items": page.items,
                "meta": {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages},
            },
        }


def _filename(lst, extension: str) -> str:
    return f"eligibility-list-{lst.id}-programme-{lst.programme_id}-n{lst.number}.{extension}"


@blp.route("/lists/<int:list_id>/export.csv")
class ListExportCsv(MethodView):
    @blp.response(200, content_type="text/csv")
    def get(self, list_id):
        """The list as CSV (streamed); personal data masked unless the caller's role needs it."""
        user = _reader()
        lst = el.get_list(list_id)
        export = el.export_list(lst, user, "csv")
        db.session.commit()
        return Response(
            stream_with_context(el.csv_chunks(export)),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{_filename(lst, "csv")}"',
                "X-PII-Level": export.pii_level,
            },
        )


@blp.route("/lists/<int:list_id>/export.xlsx")
class ListExportXlsx(MethodView):
    @blp.response(200, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    def get(self, list_id):
        """The list as an XLSX workbook; personal data masked unless the caller's role needs it."""
        user = _reader()
        lst = el.get_list(list_id)
        export = el.export_list(lst, user, "xlsx")
        body = el.xlsx_bytes(export, f"list {lst.id}")
        db.session.commit()
        return Response(
            body,
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={
                "Content-Disposition": f'attachment; filename="{_filename(lst, "xlsx")}"',
                "X-PII-Level": export.pii_level,
            },
        )


@blp.route("/lists/<int:list_id>/diff/<int:other_id>")
class ListDiff(MethodView):
    @blp.arguments(ListDiffArgs, location="query")
    @blp.response(200, ListDiffSchema)
    def get(self, args, list_id, other_id):
        """Households added and removed from ``list_id`` to ``other_id`` (same programme), with the reason."""
        user = _reader()
        return el.diff_lists(el.get_list(list_id), el.get_list(other_id), user, limit=args["limit"])


@blp.route("/households/<household_id>/programmes")
class HouseholdProgrammes(MethodView):
    @blp.response(200, HouseholdProgrammeListingSchema(many=True))
    def get(self, household_id):
        """The programmes and lists a household is on (for those who may open the household)."""
        user = current_api_user()
        household = hh.get_household(household_id)
        access.require_household_reader(user, household)
        return el.lists_for_household(household)
