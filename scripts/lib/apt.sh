# Sourced by the install scripts. apt_install WHAT-FOR SECONDS PKG...: installs the Debian
# packages of PKG that are missing (as root; otherwise says what to install), saying what,
# for what and about how long. The package lists are refreshed first when they are missing
# or a day old: on a fresh machine a stale list is what makes apt fail with "held broken
# packages". Messages go to stderr (callers may print results on stdout).
apt_install() {
  local why=$1 secs=$2 pkg
  shift 2
  local missing=()
  for pkg in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$why needs: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Without apt-utils, debconf warns that it delays configuration: harmless, and alarming.
  export DEBCONF_NOWARNINGS=yes
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    echo "Refreshing the apt package lists (~10 s) ..." >&2
    apt-get update -qq >&2
  fi
  echo "Installing ${missing[*]} with apt, for $why (~$secs s) ..." >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
