# Fixtures for the payload tests (sourced after lib.sh): local git
# repositories and an sshd that serves them over ssh.
#
# farmhand fetches sources as the build user (uid 883) from the host's
# filesystem, so every repository here lives in a world-readable directory
# (0755 dirs, 0644 files) outside the test root (make_root's is 0700).

# Commits are made with a fixed identity and without the host's gitconfig.
_git() {
  GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
    git -c user.name=farmhand-test -c user.email=farmhand-test@invalid \
    -c init.defaultBranch=main -c commit.gpgsign=false "$@"
}

# Makes a fresh world-readable directory under /var/tmp for repositories and
# assigns its path to the variable named VAR (not `$(...)`: see make_root).
make_repo_dir() {
  local dir
  dir=$(mktemp -d /var/tmp/farmhand-repos.XXXXXX)
  chmod 0755 "$dir"
  on_exit "rm -rf --one-file-system '$dir'"
  printf -v "$1" '%s' "$dir"
}

# Opens up DIR for uid 883: directories 0755, files 0644 (git's read-only
# object files included: 0444 is readable too, but keep one rule).
_world_readable() {
  find "$1" -type d -exec chmod 0755 {} + -o -type f -exec chmod a+r,go-w {} +
}

# Commits everything in the work tree DIR with MSG; prints the commit id.
_commit_all() {
  (
    umask 022
    cd "$1" && _git add -A && _git commit -q -m "$2"
  ) >&2 || return 1
  _world_readable "$1"
  _git -C "$1" rev-parse HEAD
}

# A git repository (work tree, branch main) holding the test builder
# (tests/fixtures/builder: main.c, CMakeLists.txt). Prints nothing.
make_builder_repo() {
  local dir=$1
  (umask 022 && mkdir -p "$dir" && _git init -q -b main "$dir") || return 1
  cp "$TESTS_DIR/fixtures/builder/main.c" "$TESTS_DIR/fixtures/builder/CMakeLists.txt" "$dir/"
  _commit_all "$dir" "builder: first version" >/dev/null
}

# A small repository (branch main) with one file, tool.txt. Prints nothing.
make_plain_repo() {
  local dir=$1
  (umask 022 && mkdir -p "$dir" && _git init -q -b main "$dir") || return 1
  echo "tool version 1" > "$dir/tool.txt"
  _commit_all "$dir" "first version" >/dev/null
}

# Commits a change in DIR (a line appended to CHANGES) and prints the new
# commit id.
commit_change() {
  local dir=$1 msg=$2
  echo "$msg" >> "$dir/CHANGES"
  _commit_all "$dir" "$msg"
}

# Writes stdin to PATH (relative) in the repository DIR, commits it with MSG
# and prints the new commit id.
commit_file() {
  local dir=$1 path=$2 msg=$3
  mkdir -p "$(dirname "$dir/$path")"
  cat > "$dir/$path"
  _commit_all "$dir" "$msg"
}

# A config repository (branch main) with hosts/HOST.json read from stdin.
# Prints the commit id.
make_config_repo() {
  local dir=$1 host=$2
  (umask 022 && mkdir -p "$dir" && _git init -q -b main "$dir") || return 1
  commit_file "$dir" "hosts/$host.json" "config for $host"
}

# A bare copy of the repository SRC at DST (what an ssh remote serves).
make_bare_copy() {
  (umask 022 && _git clone -q --bare "$1" "$2") || return 1
  _world_readable "$2"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts an sshd on 127.0.0.1:PORT that lets root in with a fresh client
# key, so `git clone ssh://root@127.0.0.1:PORT/abs/path.git` works. DIR
# (created, 0700) gets:
#   client_key, client_key.pub   the client's key pair (ssh-ed25519)
#   known_hosts                  "[127.0.0.1]:PORT ssh-ed25519 AAAA..." for the client
#   ssh_host_ed25519_key(.pub)   the server's host key
#   sshd_config, authorized_keys, sshd.log
# The sshd is stopped when the calling testcase (or script) ends; call it
# directly, not in `$(...)`, or the cleanup is lost with the subshell.
start_git_sshd() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  chmod 0700 "$dir"
  # sshd's privilege separation directory.
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
  ssh-keygen -q -t ed25519 -N '' -C farmhand-test-host -f "$dir/ssh_host_ed25519_key" || return 1
  ssh-keygen -q -t ed25519 -N '' -C farmhand-test-client -f "$dir/client_key" || return 1
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" > "$dir/known_hosts"
  cat > "$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/ssh_host_ed25519_key
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
AuthorizedKeysFile $dir/authorized_keys
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
PermitTTY no
EOF
  /usr/sbin/sshd -t -f "$dir/sshd_config" || return 1
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  track_pid $!
  wait_for 30 "the git server to listen on port $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}

# The ssh command line git uses to reach the sshd started in DIR on PORT.
git_ssh_command() {
  echo "ssh -i $1/client_key -o UserKnownHostsFile=$1/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes -p $2"
}
