# sqlx-cli (cargo sqlx prepare, sqlx migrate), pinned to the sqlx the workspace uses, in the
# project's tool cache. Sourced by scripts/ensure-tools.sh and scripts/sqlx-prepare.sh.
SQLX_CLI_VERSION=0.8.6
SQLX_CLI_ROOT=${BOOKSHELF_TOOLS_ROOT:-$HOME/.cache/bookshelf}

sqlx_cli_present() {
  [ -x "$SQLX_CLI_ROOT/bin/cargo-sqlx" ] &&
    "$SQLX_CLI_ROOT/bin/sqlx" --version 2>/dev/null | grep -q "$SQLX_CLI_VERSION"
}

sqlx_cli_install() {
  cargo install "sqlx-cli@$SQLX_CLI_VERSION" --locked --no-default-features --features postgres \
    --root "$SQLX_CLI_ROOT"
}
