#!/bin/bash
# linux-image.sh - builds the root disk of Ember's Linux guest: an ext4 image
# holding guest-init (/ember/init), its configuration (/ember/init.conf),
# the function's files and the mount points guest-init needs. No mounting and
# no root: mkfs.ext4 -d under fakeroot (which also makes /dev/console a
# device node). Reproducible: the same inputs give the same bytes (fixed
# timestamps, UUID and hash seed derived from the inputs, owners normalised),
# checked by tests/integration/linux-image. docs/guest-init.md.
#
#   scripts/linux-image.sh --init build/guest-init --handler /handler \
#       --handler-file build/handlers/echo.musl --out root.ext4
#   scripts/linux-image.sh ... --cache [--link build/linux-root.ext4]
set -euo pipefail

say() { printf 'linux-image: %s\n' "$*" >&2; }
die() { printf 'linux-image: error: %s\n' "$*" >&2; exit 1; }
usage() {
	cat <<'EOF'
NAME
    linux-image.sh - build the ext4 root disk of Ember's Linux guest

SYNOPSIS
    scripts/linux-image.sh --init FILE --handler PATH [OPTIONS] --out IMAGE
    scripts/linux-image.sh --init FILE --handler PATH [OPTIONS] --cache
                           [--link LINK]

DESCRIPTION
    Lays out a root file system and writes it with mkfs.ext4 -d, without
    mounting anything and without root (fakeroot):
      /ember/init        FILE (guest-init), root:root 0755
      /ember/init.conf   guest-init's configuration, from the options below
      /dev/console       the console device (5,1), for the kernel to open
      /dev /proc /sys /tmp /run   mount points
      everything in --tree DIR, owned by the handler's uid:gid
    Boot it with root=/dev/vda ro rootfstype=ext4 init=/ember/init
    (docs/linux-guest.md). The file system has no journal: the guest mounts
    it read-only, and clones restored from one snapshot share it.

    Reproducible: all timestamps are EPOCH, the UUID and the directory hash
    seed are derived from the inputs, owners and modes are normalised as
    above, so the same inputs give the same bytes.

OPTIONS
    --init FILE          the guest-init binary (required)
    --handler PATH       the handler's absolute path in the image (required)
    --handler-file FILE  copy FILE to PATH (mode 0755) instead of taking it
                         from --tree
    --tree DIR           the function's files, copied to the image's root
                         (regular files, directories, symlinks; modes kept;
                         it must not contain /ember)
    --arg WORD           an argument for the handler (repeatable)
    --env KEY=VALUE      a variable of its environment (repeatable)
    --uid N, --gid N     who the handler runs as (default 1000, gid = uid)
    --cwd DIR            its working directory (default /)
    --epoch N            timestamps (default $SOURCE_DATE_EPOCH, else 1)
    --size MIB           image size (default: the files plus room)
    --out IMAGE          write the image to IMAGE (atomically)
    --cache              build into ${EMBER_CACHE:-~/.cache/ember}/linux-image/
                         <key>/root.ext4, keyed by every input, unless it is
                         there; print its path
    --link LINK          with --cache: make LINK a symlink to it
    -h, --help           this text

EXIT STATUS
    0 built (or found in the cache), 1 error (a one-line reason on stderr),
    64 usage error.
EOF
}

init= handler= handler_file= tree= uid=1000 gid= cwd=/ out= cache=0 link=
size= epoch=${SOURCE_DATE_EPOCH:-1}
args=() envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--init) init=${2?}; shift ;;
	--handler) handler=${2?}; shift ;;
	--handler-file) handler_file=${2?}; shift ;;
	--tree) tree=${2?}; shift ;;
	--arg) args+=("${2?}"); shift ;;
	--env) envs+=("${2?}"); shift ;;
	--uid) uid=${2?}; shift ;;
	--gid) gid=${2?}; shift ;;
	--cwd) cwd=${2?}; shift ;;
	--epoch) epoch=${2?}; shift ;;
	--size) size=${2?}; shift ;;
	--out) out=${2?}; shift ;;
	--cache) cache=1 ;;
	--link) link=${2?}; shift ;;
	-h|--help) usage; exit 0 ;;
	*) say "unknown option '$1' (see --help)"; exit 64 ;;
	esac
	shift
done
gid=${gid:-$uid}

# --- validate ------------------------------------------------------------
[ -n "$init" ] || { say "--init FILE is required"; exit 64; }
[ -n "$handler" ] || { say "--handler PATH is required"; exit 64; }
[ -n "$out" ] || [ "$cache" = 1 ] || { say "give --out IMAGE or --cache"; exit 64; }
[ -z "$link" ] || [ "$cache" = 1 ] || { say "--link needs --cache"; exit 64; }
for t in mkfs.ext4 debugfs dumpe2fs e2fsck fakeroot sha256sum; do
	command -v "$t" >/dev/null || die "$t not installed (make deps)"
done
[ -f "$init" ] && [ -x "$init" ] || die "--init $init: not an executable file"
case $handler in
/*) ;; *) die "--handler must be an absolute path in the image: '$handler'" ;;
esac
case $handler/ in
*/../*|*/./*|*//*) die "--handler '$handler': no '.', '..' or empty components" ;;
esac
case $handler in /ember|/ember/*) die "--handler: /ember is guest-init's" ;; esac
case $cwd in /*) ;; *) die "--cwd must be an absolute path: '$cwd'" ;; esac
[[ $uid =~ ^[0-9]{1,10}$ ]] && [ "$uid" -lt 4294967295 ] || die "--uid: a number 0..4294967294"
[[ $gid =~ ^[0-9]{1,10}$ ]] && [ "$gid" -lt 4294967295 ] || die "--gid: a number 0..4294967294"
[[ $epoch =~ ^[0-9]{1,12}$ ]] && [ "$epoch" -ge 1 ] || die "--epoch: seconds since 1970, at least 1"
[ -z "$size" ] || [[ $size =~ ^[0-9]{1,6}$ ]] || die "--size: MiB, a number"
for v in "${args[@]}" "${envs[@]}"; do
	case $v in *$'\n'*) die "an --arg or --env value contains a newline" ;; esac
done
for e in "${envs[@]}"; do
	[[ $e =~ ^[^=]+= ]] || die "--env '$e': wants KEY=VALUE"
done
if [ -n "$handler_file" ]; then
	[ -f "$handler_file" ] || die "--handler-file $handler_file: not a file"
fi
if [ -n "$tree" ]; then
	[ -d "$tree" ] || die "--tree $tree: not a directory"
	[ ! -e "$tree/ember" ] && [ ! -L "$tree/ember" ] || die "--tree: /ember is guest-init's; the tree must not have it"
	bad=$(find "$tree" ! -type f ! -type d ! -type l -print -quit)
	[ -z "$bad" ] || die "--tree: only files, directories and symlinks: '${bad#"$tree"}'"
	for m in dev proc sys tmp run; do
		[ ! -e "$tree/$m" ] || [ -d "$tree/$m" ] && [ ! -L "$tree/$m" ] ||
			die "--tree: /$m must be a directory (a mount point)"
	done
fi

# --- configuration --------------------------------------------------------
conf=$({
	echo "# guest-init configuration, written by scripts/linux-image.sh"
	echo "handler $handler"
	for a in "${args[@]}"; do echo "arg $a"; done
	for e in "${envs[@]}"; do echo "env $e"; done
	echo "uid $uid"
	echo "gid $gid"
	echo "cwd $cwd"
})

# --- the cache key: every input, and the tools' versions --------------------
tree_digest() {
	[ -n "$tree" ] || return 0
	(cd "$tree" && find . -printf '%y %m %s %P -> %l\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
key=$({
	printf 'script\n'; cat "$0"
	printf 'mke2fs %s\n' "$(mkfs.ext4 -V 2>&1 | head -1)"
	printf 'fakeroot %s\n' "$(fakeroot -v 2>&1 | head -1)"
	printf 'epoch %s size %s\n' "$epoch" "${size:-auto}"
	printf 'conf\n%s\n' "$conf"
	printf 'init '; sha256sum <"$init"
	printf 'handler-file '; [ -n "$handler_file" ] && sha256sum <"$handler_file"; echo
	printf 'tree\n'; tree_digest
} | sha256sum | cut -c1-32)

if [ "$cache" = 1 ]; then
	dir=${EMBER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}/linux-image/${key:0:16}
	out=$dir/root.ext4
	if [ -f "$dir/.done" ] && [ -f "$out" ]; then
		say "cache hit (${key:0:16})"
		[ -z "$link" ] || { mkdir -p "$(dirname "$link")"; ln -sfn "$out" "$link"; say "$link -> $out"; }
		echo "$out"
		exit 0
	fi
	mkdir -p "$dir"
fi

# --- stage the tree -------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/linux-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
if [ -n "$tree" ]; then
	# Modes and symlinks kept; owners and times are set below.
	cp -RP --preserve=mode "$tree/." "$root/"
fi
if [ -n "$handler_file" ]; then
	mkdir -p "$root$(dirname "$handler")"
	cp "$handler_file" "$root$handler"
	chmod 0755 "$root$handler"
fi
[ -f "$root$handler" ] || die "the handler $handler is not a file in the image (--tree or --handler-file)"
[ -x "$root$handler" ] || die "the handler $handler is not executable"
for m in dev proc sys run; do mkdir -p "$root/$m"; done
mkdir -p "$root/tmp"
chmod 0755 "$root" "$root/dev" "$root/proc" "$root/sys" "$root/run"
chmod 1777 "$root/tmp"
mkdir -p "$root/ember"
cp "$init" "$root/ember/init"
chmod 0755 "$root/ember" "$root/ember/init"
printf '%s\n' "$conf" >"$root/ember/init.conf"
chmod 0644 "$root/ember/init.conf"

nfiles=$(find "$root" | wc -l)
bytes=$(du -s --apparent-size -B1 "$root" | cut -f1)
if [ -z "$size" ]; then
	# Files, a block per inode for small files and directories, 25 % and
	# 4 MiB of room: deterministic, from the contents only.
	size=$(( (bytes + nfiles * 4096) * 5 / 4 / 1048576 + 4 ))
	[ "$size" -ge 8 ] || size=8
fi
inodes=$(( nfiles + 64 ))
uuid=$(printf '%s-%s-4%s-8%s-%s' "${key:0:8}" "${key:8:4}" "${key:13:3}" "${key:17:3}" "${key:20:12}")
seed=$(printf '%s' "$key" | sha256sum | cut -c1-32 |
	sed 's/^\(.\{8\}\)\(.\{4\}\).\(.\{3\}\).\(.\{3\}\)\(.\{12\}\)$/\1-\2-4\3-8\4-\5/')

# --- write it ----------------------------------------------------------
img=$work/root.ext4
truncate -s "${size}M" "$img"
say "building ${size} MiB, $nfiles entries, uid:gid $uid:$gid (key ${key:0:16})"
# One fakeroot session: owners and the console node are faked for mkfs.ext4
# to see, and E2FSPROGS_FAKE_TIME pins the times mke2fs makes up itself.
fakeroot -- /bin/sh -e -c '
	root=$1 uid=$2 gid=$3 epoch=$4
	chown -R "$uid:$gid" "$root"
	chown 0:0 "$root" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/run"
	chown -R 0:0 "$root/ember"
	mknod "$root/dev/console" c 5 1
	chmod 0600 "$root/dev/console"
	find "$root" -exec touch -h -d "@$epoch" {} +
	E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -t ext4 -b 4096 -I 256 \
		-N "$5" -m 0 -L ember-root -U "$6" -O ^has_journal \
		-E "hash_seed=$7,root_owner=0:0,lazy_itable_init=0" \
		-d "$root" "$8"
' sh "$root" "$uid" "$gid" "$epoch" "$inodes" "$uuid" "$seed" "$img" \
	>"$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log" >&2; die "mkfs.ext4 failed"; }

# mkfs.ext4 -d copies each file's ctime from the staged copy, which is when
# it was made: pin it too, inode by inode. The inodes in use are read from
# the bitmaps (not from the tree, so no file name can confuse the command
# file), from the first non-reserved inode on.
dumpe2fs "$img" >"$work/dump" 2>/dev/null || die "dumpe2fs failed"
awk -v epoch="$epoch" '
	/^Inode count:/ { total = $3 }
	/^First inode:/ { first = $3 }
	/^ +Free inodes: / { # per group; the unindented line is a count
		sub(/^ +Free inodes: */, "")
		n = split($0, parts, /, */)
		for (i = 1; i <= n; i++) {
			if (parts[i] == "") continue
			split(parts[i], ab, "-")
			a = ab[1] + 0; b = (ab[2] == "" ? a : ab[2] + 0)
			for (j = a; j <= b; j++) free[j] = 1
		}
	}
	END {
		if (!total || !first) exit 1
		for (i = first; i <= total; i++)
			if (!(i in free)) { print "sif <" i "> ctime @" epoch; used++ }
		if (used < 1) exit 1
	}' "$work/dump" >"$work/ctime.cmds" || die "cannot read the inode bitmaps"
used=$(wc -l <"$work/ctime.cmds")
# Every staged entry but the root (inode 2), plus /dev/console (made under
# fakeroot) and lost+found (mke2fs's own, the first inode).
expect=$(( nfiles - 1 + 2 ))
[ "$used" -eq "$expect" ] ||
	die "the bitmaps show $used inodes in use past the reserved ones, the tree has $expect"
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f "$work/ctime.cmds" "$img" >"$work/debugfs.log" 2>&1 ||
	{ cat "$work/debugfs.log" >&2; die "debugfs failed"; }
e2fsck -fn "$img" >"$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; die "e2fsck finds the image broken"; }

mkdir -p "$(dirname "$out")"
cp "$img" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
if [ "$cache" = 1 ]; then
	touch "$dir/.done"
	[ -z "$link" ] || { mkdir -p "$(dirname "$link")"; ln -sfn "$out" "$link"; say "$link -> $out"; }
fi
say "$out: $(sha256sum <"$out" | cut -c1-16)"
echo "$out"
