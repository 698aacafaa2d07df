#!/usr/bin/env bash
# Checks that the Dockerfile's build stage can build Tessera from what it copies, without Docker:
# the build stage's COPY lines are replayed into a temporary folder (the context filtered by
# .dockerignore, then copied the way Docker copies), and there `cargo metadata --locked` and
# `cargo check --locked --bin tessera` must succeed (offline: the registry cache is shared, and so
# is CARGO_TARGET_DIR when set, so only the tessera crate itself is checked).
#
# Usage: scripts/check-docker-context.sh [Dockerfile]
# Supported: COPY/ADD of local paths in the first stage (flags such as --chown are skipped; COPY
# --from=... is ignored), WORKDIR, line continuations, .dockerignore patterns with * ? and **.
# Anything else that would change what the build sees (JSON-form COPY, variables, negated ignore
# patterns, URLs) fails the check instead of being guessed.
set -euo pipefail
shopt -s globstar dotglob nullglob

repo="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="${1:-$repo/Dockerfile}"
fail() {
  echo "check-docker-context: $*" >&2
  exit 1
}
[ -f "$dockerfile" ] || fail "no Dockerfile at $dockerfile"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
context="$work/context" # the build context as Docker sees it (after .dockerignore)
image="$work/image"     # the build stage's file system
mkdir -p "$context" "$image"

# The build stage's instructions, one per line (continuations joined, comments dropped).
instructions="$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" | grep -v '^[[:space:]]*#' || true)"

# 1. Stage the context: every path a COPY names, then drop what .dockerignore excludes.
workdir=/
copies=()
stage=0
while read -r keyword rest; do
  case "${keyword^^}" in
    FROM)
      stage=$((stage + 1))
      [ "$stage" -le 1 ] || break
      ;;
    WORKDIR)
      case "$rest" in /*) workdir="$rest" ;; *) workdir="${workdir%/}/$rest" ;; esac
      ;;
    COPY | ADD)
      [[ "$rest" == *'$'* ]] && fail "variables in '$keyword $rest' are not supported"
      [[ "$rest" == '['* ]] && fail "JSON-form '$keyword $rest' is not supported"
      read -r -a words <<<"$rest"
      args=()
      from=""
      for w in "${words[@]}"; do
        case "$w" in
          --from=*) from="$w" ;;
          --*) ;;
          *) args+=("$w") ;;
        esac
      done
      [ -n "$from" ] && continue
      [ "${#args[@]}" -ge 2 ] || fail "'$keyword $rest' names no source"
      for src in "${args[@]:0:${#args[@]}-1}"; do
        [[ "$src" == *://* ]] && fail "remote sources ('$src') are not supported"
        [[ "/$src/" == */../* || "$src" == /* ]] && fail "'$src' leaves the build context"
        src="${src#./}"
        [ -e "$repo/$src" ] || fail "'$keyword $rest': $src does not exist in the context"
        mkdir -p "$context/$(dirname "$src")"
        cp -a "$repo/$src" "$context/$src"
      done
      copies+=("$workdir|${args[*]}")
      ;;
  esac
done <<<"$instructions"
[ "${#copies[@]}" -gt 0 ] || fail "the build stage copies nothing"

if [ -f "$repo/.dockerignore" ]; then
  while IFS= read -r pattern || [ -n "$pattern" ]; do
    pattern="${pattern%%#*}"
    pattern="$(echo "$pattern" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
    [ -n "$pattern" ] || continue
    [[ "$pattern" == '!'* ]] && fail ".dockerignore exceptions ('$pattern') are not supported"
    [[ "/$pattern/" == */../* ]] && fail ".dockerignore pattern '$pattern' leaves the context"
    pattern="${pattern#/}"
    pattern="${pattern#./}"
    pattern="${pattern%/}"
    # Anchored at the context root, as Docker matches them; the glob expands to what exists.
    # shellcheck disable=SC2206
    matches=($context/$pattern)
    for m in "${matches[@]}"; do rm -rf "$m"; done
  done <"$repo/.dockerignore"
fi

# 2. Replay the COPY lines into the stage's file system, the way Docker copies: a folder's
#    contents go into the destination; files go into it when it ends in / or there are several.
for copy in "${copies[@]}"; do
  dir="${copy%%|*}"
  read -r -a args <<<"${copy#*|}"
  dest="${args[-1]}"
  [[ "/$dest/" == */../* ]] && fail "destination '$dest' climbs out of the image root"
  case "$dest" in /*) target="$image$dest" ;; *) target="$image${dir%/}/$dest" ;; esac
  sources=("${args[@]:0:${#args[@]}-1}")
  into=0
  [[ "$dest" == */ || "$dest" == . || "${#sources[@]}" -gt 1 ]] && into=1
  for src in "${sources[@]}"; do
    src="$context/${src#./}"
    [ -e "$src" ] || continue # excluded by .dockerignore: Docker copies nothing either
    if [ -d "$src" ]; then
      mkdir -p "$target"
      cp -a "$src/." "$target/"
    elif [ "$into" = 1 ]; then
      mkdir -p "$target"
      cp -a "$src" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp -a "$src" "$target"
    fi
  done
done

# 3. Build there as the image would (checked, not compiled to a binary, to stay cheap).
cd "$image$workdir"
echo "check-docker-context: the build stage sees: $(ls -A | tr '\n' ' ')"
cargo metadata --locked --offline --format-version 1 --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" >/dev/null ||
  fail "cargo metadata fails on exactly what $(basename "$dockerfile") copies"
cargo check --locked --offline --quiet --bin tessera ||
  fail "cargo check --bin tessera fails on exactly what $(basename "$dockerfile") copies"
echo "check-docker-context: ok"
