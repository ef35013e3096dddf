"""GoogleSQL → DuckDB, one statement at a time, with sqlglot (read="bigquery", write="duckdb").

Beyond sqlglot's own translation, this module does what BigQuery's semantics need and DuckDB
would do differently: `project.dataset.table` loses its project (one project per emulator, any
other is BigQuery's 404), query parameters become typed literals, a float literal stays FLOAT64
(DuckDB would read ``1.5`` as a DECIMAL), NUMERIC is DECIMAL(38,9) (DuckDB's bare DECIMAL is
(18,3)), unnamed result columns are named ``f0_, f1_...``, PARTITION BY / CLUSTER BY / OPTIONS
are dropped, and ``dataset.INFORMATION_SCHEMA.TABLES|COLUMNS`` reads DuckDB's catalog. Whatever
sqlglot cannot parse or translate is refused with BigQuery's ``invalidQuery`` error naming the
emulator and the statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError, UnsupportedError
from sqlglot.tokens import TokenType

from .errors import invalid_query, not_found

_ABORT_SESSION = re.compile(r"^\s*CALL\s+BQ\s*\.\s*ABORT_SESSION\s*\(", re.IGNORECASE)
_KEEP_PROPERTIES = (exp.TemporaryProperty,)  # the rest (partitioning, clustering, OPTIONS) is BigQuery's storage
_DDL_KINDS = {"TABLE", "VIEW", "SCHEMA"}

#: (dataset, view name) → a DuckDB subquery with BigQuery's INFORMATION_SCHEMA columns.
InfoSchema = Callable[[str, str], str]


@dataclass
class Statement:
    """One statement of a script: its text as sent, its kind, and its DuckDB translation."""

    text: str
    kind: str  # BigQuery's statementType: SELECT, INSERT, CREATE_TABLE, BEGIN_TRANSACTION...
    sql: str = ""
    #: base tables read, (dataset or None when unqualified, table): for totalBytesProcessed
    reads: list[tuple[str | None, str]] = field(default_factory=list)
    #: column names mentioned (lower case); None when a * reads every column
    columns: set[str] | None = None
    #: the table or dataset a DDL/DML statement changes: (dataset, table or None)
    target: tuple[str | None, str | None] | None = None
    temporary: bool = False
    if_exists: bool = False  # CREATE ... IF NOT EXISTS / DROP ... IF EXISTS
    replace: bool = False

    @property
    def is_query(self) -> bool:
        return self.kind == "SELECT"


#: type names GoogleSQL knows (aliases included), as written after CAST(… AS
GOOGLESQL_TYPES = {
    "INT64", "INT", "SMALLINT", "INTEGER", "BIGINT", "TINYINT", "BYTEINT", "NUMERIC", "DECIMAL", "BIGNUMERIC",
    "BIGDECIMAL", "FLOAT64", "BOOL", "BOOLEAN", "STRING", "BYTES", "DATE", "DATETIME", "TIME", "TIMESTAMP",
    "INTERVAL", "JSON", "GEOGRAPHY", "ARRAY", "STRUCT", "RANGE",
}  # fmt: skip


def _check_types(text: str) -> None:
    """Refuse what sqlglot's BigQuery dialect reads but BigQuery does not: a `::` cast, and a
    CAST to a type GoogleSQL has no name for (DOUBLE PRECISION, VARCHAR, TEXT, FLOAT…), which
    sqlglot would quietly map to one it has. BigQuery's words: "Type not found: DOUBLE"."""
    try:
        tokens = BigQuery().tokenize(text)
    except TokenError:
        return  # the parse says it
    casts: list[int] = []  # the depth of each CAST( being read
    depth = 0
    for i, token in enumerate(tokens):
        if token.token_type == TokenType.DCOLON:
            raise invalid_query(f'Syntax error: Unexpected "::" (GoogleSQL casts with CAST(x AS type)): {fragment(text)}')
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if i and tokens[i - 1].text.upper() in ("CAST", "SAFE_CAST"):
                casts.append(depth)
        elif token.token_type == TokenType.R_PAREN:
            if casts and casts[-1] == depth:
                casts.pop()
            depth -= 1
        elif token.token_type == TokenType.ALIAS and casts and casts[-1] == depth and i + 1 < len(tokens):
            name = tokens[i + 1].text.upper().split("<")[0].split("(")[0].strip()
            if name not in GOOGLESQL_TYPES:
                raise invalid_query(f"Type not found: {name.split()[0]}. Statement: {fragment(text)}")


def _one_based_offsets(tree: exp.Expr) -> None:
    """`arr[OFFSET(expr)]` as DuckDB's 1-based `arr[expr + 1]`. sqlglot 30.22 shifts only a
    literal index: `['a', 'b', 'c'][OFFSET(MOD(i, 3))]` came out as `[i % 3]`, off by one
    (NULL for the first element on DuckDB)."""
    for bracket in list(tree.find_all(exp.Bracket)):
        if bracket.args.get("offset") == 0 and not all(isinstance(e, exp.Literal) for e in bracket.expressions):
            bracket.set(
                "expressions", [exp.Add(this=exp.Paren(this=e.copy()), expression=exp.Literal.number(1)) for e in bracket.expressions]
            )
            bracket.set("offset", 1)


def fragment(text: str, limit: int = 160) -> str:
    """A statement as quoted in an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def split_script(script: str) -> list[str]:
    """The statements of a script, split on the `;` tokens (not those in strings or comments)."""
    try:
        tokens = BigQuery().tokenize(script)
    except TokenError as e:
        raise invalid_query(f"Syntax error: {e} (the BigQuery emulator could not read: {fragment(script)})") from e
    parts, start, seen = [], 0, False
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if seen:
                parts.append(script[start : token.start])
            start, seen = token.end + 1, False
        else:
            seen = True
    if seen:
        parts.append(script[start:])
    return [p.strip() for p in parts]


class Translator:
    """Translates the statements of one query request (its project, default dataset and
    parameters)."""

    def __init__(
        self,
        project: str,
        default_dataset: str | None,
        named: dict[str, str],
        positional: list[str],
        info_schema: InfoSchema,
    ) -> None:
        self.project, self.default_dataset = project, default_dataset
        self.named = {k.lower(): v for k, v in named.items()}  # parameter names ignore case
        self.positional = positional
        self.info_schema = info_schema

    def statements(self, script: str) -> list[Statement]:
        parts = split_script(script)
        if not parts:
            raise invalid_query("Syntax error: Unexpected end of script (the BigQuery emulator received no statement)")
        return [self.translate(p) for p in parts]

    def translate(self, text: str) -> Statement:
        if _ABORT_SESSION.match(text):
            return Statement(text, "CALL")  # the session itself is ended by the caller
        _check_types(text)
        try:
            tree: exp.Expr = sqlglot.parse_one(text, read="bigquery", error_level=ErrorLevel.RAISE)
        except (ParseError, TokenError) as e:
            raise invalid_query(f"Syntax error: {_first_line(e)}. The BigQuery emulator (sqlglot) could not parse: {fragment(text)}") from e
        statement = Statement(text, self._kind(tree, text))
        if statement.kind == "BEGIN_TRANSACTION":
            statement.sql = "BEGIN TRANSACTION"
            return statement
        self._rewrite(tree, statement)
        try:
            statement.sql = tree.sql(
                dialect="duckdb", unsupported_level=ErrorLevel.RAISE, identify=True
            )  # quoted: `by` is a column name in GoogleSQL
        except UnsupportedError as e:
            raise invalid_query(f"The BigQuery emulator cannot run this on DuckDB: {_first_line(e)}. Statement: {fragment(text)}") from e
        except SqlglotError as e:
            raise invalid_query(f"The BigQuery emulator (sqlglot) could not translate: {fragment(text)}: {_first_line(e)}") from e
        return statement

    # ------------------------------------------------------------ classification

    def _kind(self, tree: exp.Expr, text: str) -> str:
        if isinstance(tree, exp.Query):
            return "SELECT"
        simple = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE"}
        simple |= {exp.TruncateTable: "TRUNCATE_TABLE", exp.Alter: "ALTER_TABLE", exp.Transaction: "BEGIN_TRANSACTION"}
        simple |= {exp.Commit: "COMMIT_TRANSACTION", exp.Rollback: "ROLLBACK_TRANSACTION"}
        for cls, kind in simple.items():
            if isinstance(tree, cls):
                return kind
        if isinstance(tree, exp.Command) and tree.name.upper() == "BEGIN" and not str(tree.expression or "").strip():
            return "BEGIN_TRANSACTION"  # `BEGIN;` is BEGIN TRANSACTION in GoogleSQL
        if isinstance(tree, (exp.Create, exp.Drop)) and str(tree.args.get("kind", "")).upper() in _DDL_KINDS:
            kind = str(tree.args["kind"]).upper()
            verb = "CREATE" if isinstance(tree, exp.Create) else "DROP"
            if verb == "CREATE" and kind == "TABLE" and isinstance(tree.expression, exp.Query):
                return "CREATE_TABLE_AS_SELECT"
            return f"{verb}_{kind}"
        word = text.split(None, 1)[0].upper() if text.split() else "?"
        raise invalid_query(
            f"The BigQuery emulator does not support {word} statements (sqlglot cannot translate them to DuckDB): {fragment(text)}"
        )

    # ------------------------------------------------------------ rewriting

    def _rewrite(self, tree: exp.Expr, st: Statement) -> None:
        self._parameters(tree)
        _one_based_offsets(tree)
        if isinstance(tree, (exp.Create, exp.Drop)):
            self._ddl(tree, st)
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        skip: set[int] = set()
        if isinstance(tree, (exp.Create, exp.Drop)):
            skip |= {id(t) for t in _ddl_tables(tree)}
        if isinstance(tree, exp.Insert):
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            skip.add(id(target))  # written, not read
            st.target = (target.db or None, target.name)
        elif isinstance(tree, (exp.Update, exp.Delete, exp.Merge, exp.TruncateTable)) and isinstance(tree.this, exp.Table):
            st.target = (tree.this.db or None, tree.this.name)
        for table in list(tree.find_all(exp.Table)):
            if table.name in ctes and not table.db:
                continue
            self._table(table, st, read=id(table) not in skip)
        # a projected * (or t.*) reads every column; COUNT(*) reads none
        star = any(isinstance(s.parent, (exp.Select, exp.Column)) for s in tree.find_all(exp.Star))
        st.columns = None if star else {c.name.lower() for c in tree.find_all(exp.Column)}
        for literal in list(tree.find_all(exp.Literal)):
            if literal.is_number and not literal.is_int and not isinstance(literal.parent, exp.DataTypeParam):
                literal.replace(exp.cast(literal.copy(), exp.DataType.build("DOUBLE")))  # GoogleSQL's 1.5 is FLOAT64
        for dtype in list(tree.find_all(exp.DataType)):
            if dtype.this == exp.DataType.Type.DECIMAL and not dtype.expressions:
                dtype.replace(exp.DataType.build("DECIMAL(38, 9)", dialect="duckdb"))
            elif dtype.this == exp.DataType.Type.BIGDECIMAL:
                dtype.replace(exp.DataType.build("DECIMAL(38, 18)", dialect="duckdb"))
        _name_anonymous_columns(tree)

    def _parameters(self, tree: exp.Expr) -> None:
        for param in list(tree.find_all(exp.Parameter)):
            if isinstance(param.this, exp.Parameter):  # @@name: a system variable
                if param.this.name.lower() != "project_id":
                    raise invalid_query(f"System variable @@{param.this.name} is not supported by the BigQuery emulator (@@project_id is)")
                param.replace(exp.Literal.string(self.project))
                continue
            if isinstance(param.parent, exp.Parameter):
                continue  # replaced with its @@ parent
            name = param.name.lower()
            if name not in self.named:
                raise invalid_query(f"Query parameter '{param.name}' not found (BigQuery emulator)")
            param.replace(sqlglot.parse_one(self.named[name], read="duckdb"))
        placeholders = list(tree.find_all(exp.Placeholder, bfs=False))
        if len(placeholders) > len(self.positional):
            raise invalid_query(f"Query has {len(placeholders)} positional parameters but {len(self.positional)} were provided")
        for placeholder, value in zip(placeholders, self.positional, strict=False):
            placeholder.replace(sqlglot.parse_one(value, read="duckdb"))
        self.positional = self.positional[len(placeholders) :]  # a script's next statement uses the next ones

    def _ddl(self, tree: exp.Create | exp.Drop, st: Statement) -> None:
        kind = str(tree.args["kind"]).upper()
        st.if_exists = bool(tree.args.get("exists"))
        st.replace = bool(tree.args.get("replace"))
        props = tree.args.get("properties")
        if isinstance(tree, exp.Create) and props is not None:
            st.temporary = any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)
            props.set("expressions", [p for p in props.expressions if isinstance(p, _KEEP_PROPERTIES)])
        for table in _ddl_tables(tree):
            if kind == "SCHEMA":
                parts = [p for p in (table.catalog, table.db, table.name) if p]
                parts = [x for p in parts for x in p.split(".")]  # `project.dataset` in backticks
                self._check_project(parts[0] if len(parts) > 1 else None, ".".join(parts))
                table.set("catalog", None)
                table.set("db", exp.to_identifier(parts[-1]))
                table.set("this", None)
                st.target = (parts[-1], None)
                continue
            self._check_project(table.catalog or None, table.sql("bigquery"))
            table.set("catalog", None)
            if not table.db and not st.temporary and isinstance(tree, exp.Create):
                if not self.default_dataset:
                    raise invalid_query(f'Table "{table.name}" must be qualified with a dataset (e.g. dataset.table).')
                table.set("db", exp.to_identifier(self.default_dataset))
            st.target = (table.db or None, table.name)

    def _table(self, table: exp.Table, st: Statement, read: bool) -> None:
        name = table.name
        view: str | None = None
        dataset: str | None
        if name.upper().startswith("INFORMATION_SCHEMA."):
            view, dataset, project = name.split(".", 1)[1], table.db, table.catalog
        elif table.db.upper() == "INFORMATION_SCHEMA":
            view, dataset, project = name, table.catalog, None
        if view is not None:
            if project:
                self._check_project(project, table.sql("bigquery"))
            dataset = dataset or self.default_dataset
            if not dataset:
                raise invalid_query(
                    f'Table name "INFORMATION_SCHEMA.{view}" missing dataset while no default dataset is set in the request.'
                )
            sub = sqlglot.parse_one(self.info_schema(dataset, view.upper()), read="duckdb")
            alias = table.alias or view.upper()
            table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias))))
            return
        self._check_project(table.catalog or None, table.sql("bigquery"))
        table.set("catalog", None)
        if read:
            st.reads.append((table.db or None, name))

    def _check_project(self, project: str | None, what: str) -> None:
        if project and project != self.project:
            raise not_found(f"Project {project} (the BigQuery emulator serves project {self.project} only; in {what})")


def _ddl_tables(tree: exp.Create | exp.Drop) -> list[exp.Table]:
    if isinstance(tree, exp.Drop):
        return [t for t in tree.args.get("tables") or [tree.this] if isinstance(t, exp.Table)]
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    return [target] if isinstance(target, exp.Table) else []


def _name_anonymous_columns(tree: exp.Expr) -> None:
    """BigQuery names an unnamed result column f0_, f1_... (DuckDB would use its text)."""
    select: exp.Expr = tree
    while isinstance(select, exp.SetOperation):
        select = select.left
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
        select = tree.expression
        while isinstance(select, exp.SetOperation):
            select = select.left
    if not isinstance(select, exp.Select):
        return
    n = 0
    for projection in list(select.expressions):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star, exp.Dot)):
            continue
        projection.replace(exp.alias_(projection.copy(), f"f{n}_"))
        n += 1


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
