# Sourced by the scripts that build gengap's side environments (vllm_env.sh, verl_env.sh):
# libraries that pin an older stack get their own venv, built once and stamped when finished.
#
#   side_env_begin VENV STAMP   exits the calling script if STAMP exists, else makes a fresh VENV
#   pipq ARGS...                VENV's pip, minus this machine's harmless local-index warnings
#   side_env_end STAMP          writes the build's seconds into STAMP (the mark of a finished build)

pipq() {
    "$SIDE_ENV/bin/pip" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

side_env_begin() {
    SIDE_ENV="$1"
    if [[ -f "$2" ]]; then
        exit 0
    fi
    SIDE_ENV_START=$(date +%s)
    rm -rf "$SIDE_ENV"
    "${PYTHON:-python3}" -m venv "$SIDE_ENV"
    pipq install --quiet --upgrade pip
}

side_env_end() {
    echo "$(($(date +%s) - SIDE_ENV_START))" > "$1"
    echo "built $SIDE_ENV in $(cat "$1") s"
}
