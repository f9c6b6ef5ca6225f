import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, get, savedToken, type DiskFiles, type FileEntry, type FileListing } from '../api.ts';
import { bytes, when } from '../format.ts';
import { usePoll } from '../hooks.ts';

/** File systems the server can list and fetch files from. */
const READABLE = new Set(['ext4', 'ntfs', 'xfs']);

/** `drwxr-xr-x`, as `ls -l` shows it. */
export function modeText(e: FileEntry): string {
  const kind = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?';
  const bits = (shift: number, special: number, ch: string) => {
    const x = e.mode & (1 << shift);
    const s = e.mode & special;
    return `${e.mode & (4 << shift) ? 'r' : '-'}${e.mode & (2 << shift) ? 'w' : '-'}${s ? (x ? ch : ch.toUpperCase()) : x ? 'x' : '-'}`;
  };
  return kind + bits(6, 0o4000, 's') + bits(3, 0o2000, 's') + bits(0, 0o1000, 't');
}

const baseName = (path: string) => path.replace(/\/+$/, '').split('/').pop() || '/';
const parentOf = (path: string) => path.replace(/\/[^/]*\/?$/, '') || '/';

/**
 * A file or folder of a recovery point as a tar archive, saved by the browser. The archive route
 * needs the bearer token, which a plain link cannot send: fetch it, then save it through a Blob URL.
 */
async function download(pointId: string, where: string, path: string): Promise<void> {
  const token = savedToken();
  const res = await fetch(
    `/api/recovery-points/${encodeURIComponent(pointId)}/archive?${where}&path=${encodeURIComponent(path)}`,
    {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'x-goldsnap-client': 'console' },
    },
  );
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'files.tar';
  const unread = JSON.parse(res.headers.get('x-goldsnap-errors') ?? '[]') as Array<{ path: string; error: string }>;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  if (unread.length)
    throw new Error(
      `${name} saved without ${unread.length} file(s) that could not be read: ${unread.map((u) => u.path).join(', ')}`,
    );
}

/** A recovery point's files: disk and partition → folders (breadcrumbs) → files; search by name; download. */
export function Files({ pointId }: { pointId: string }) {
  const { data: disks, error: diskError } = usePoll(
    async () =>
      (await get<{ disks: DiskFiles[] }>(`/api/recovery-points/${encodeURIComponent(pointId)}/partitions`)).disks,
    0,
    [pointId],
  );
  const [choice, setChoice] = useState<string>();
  const [path, setPath] = useState('/');
  const [name, setName] = useState<string>();
  const [message, setMessage] = useState<{ text: string; error?: boolean }>();
  const choices = (disks ?? []).flatMap((d) =>
    d.partitions.map((p) => ({ key: `${d.name}/${p.number}`, disk: d, part: p, readable: READABLE.has(p.fs) })),
  );
  useEffect(() => {
    if (!choice && choices.length) setChoice((choices.find((c) => c.readable) ?? choices[0]).key);
  }, [choice, choices]);
  const picked = choices.find((c) => c.key === choice);
  const where = picked ? `disk=${encodeURIComponent(picked.disk.name)}&partition=${picked.part.number}` : '';
  const query = `${where}&path=${encodeURIComponent(path)}${name ? `&name=${encodeURIComponent(name)}` : ''}`;
  const listing = usePoll(
    async () => {
      if (!picked?.readable) return undefined;
      const q = query;
      return { q, ...(await get<FileListing>(`/api/recovery-points/${encodeURIComponent(pointId)}/files?${q}`)) };
    },
    0,
    [pointId, choice, path, name, picked?.readable],
  );
  // An answer for another folder or search (a slow one arriving late) is never shown as this one's.
  const shown = listing.data?.q === query ? listing.data : undefined;

  const open = (to: string) => {
    setPath(to);
    setName(undefined);
    setMessage(undefined);
  };
  const search = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const text = String(new FormData(e.currentTarget).get('name') ?? '').trim();
    // A plain word finds names containing it; `*` and `?` make it a pattern of the whole name.
    setName(text ? (/[*?]/.test(text) ? text : `*${text}*`) : undefined);
  };
  const save = (p: string) => {
    setMessage({ text: `Preparing ${baseName(p)}…` });
    download(pointId, where, p).then(
      () => setMessage({ text: `${baseName(p)} downloaded` }),
      (err: Error) => setMessage({ text: err.message, error: true }),
    );
  };

  const crumbs = path.split('/').filter(Boolean);
  const entries = shown?.entries ?? [];
  return (
    <>
      <p>
        <a href="#/restore">← Recovery points</a>
      </p>
      <h1>Files of recovery point {pointId.slice(0, 12)}</h1>
      {!disks && <p className={diskError ? 'error' : 'muted'}>{diskError ?? 'Reading the partition tables…'}</p>}
      {disks && (
        <div className="filters">
          <label>
            Disk and partition{' '}
            <select
              id="partition"
              value={choice ?? ''}
              onChange={(e) => {
                setChoice(e.target.value);
                open('/');
              }}
            >
              {choices.map((c) => (
                <option key={c.key} value={c.key} disabled={!c.readable}>
                  {c.disk.name} #{c.part.number}
                  {c.part.name ? ` ${c.part.name}` : ''} — {c.part.fs}, {bytes(c.part.sizeBytes)}
                </option>
              ))}
            </select>
          </label>
          <form id="file-search" className="filters" onSubmit={search}>
            <label>
              Name{' '}
              <input
                name="name"
                type="search"
                placeholder="e.g. *.conf"
                defaultValue={name ?? ''}
                key={`${choice}${path}${name ?? ''}`}
              />
            </label>
            <button type="submit">Search</button>
            {name && (
              <button type="button" onClick={() => setName(undefined)}>
                Clear
              </button>
            )}
          </form>
        </div>
      )}
      {choices.length === 0 && disks && (
        <p className="muted">No partition with a file system on this recovery point's disks.</p>
      )}
      {picked && !picked.readable && (
        <p className="warning">{picked.part.fs} file systems cannot be browsed: restore the disk instead.</p>
      )}
      {picked?.readable && (
        <>
          <nav id="breadcrumbs" className="crumbs" aria-label="Folder">
            <button type="button" className="link" onClick={() => open('/')}>
              /
            </button>
            {crumbs.map((c, i) => (
              <span key={`/${crumbs.slice(0, i + 1).join('/')}`}>
                {' '}
                {i > 0 && '/ '}
                <button type="button" className="link" onClick={() => open(`/${crumbs.slice(0, i + 1).join('/')}`)}>
                  {c}
                </button>
              </span>
            ))}{' '}
            <button type="button" onClick={() => save(path)}>
              Download this folder
            </button>
          </nav>
          {name && (
            <p className="muted" id="search-info">
              Names matching <code>{name}</code> under {path}: {shown ? entries.length : '…'}
            </p>
          )}
          {message && (
            <p id="message" className={message.error ? 'error' : 'muted'} role="status">
              {message.text}
            </p>
          )}
          {listing.error && <p className="error">{listing.error}</p>}
          {!shown && !listing.error && <p className="muted">Reading…</p>}
          {shown && (
            <table id="files">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Size</th>
                  <th>Mode</th>
                  <th>Modified</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {path !== '/' && !name && (
                  <tr>
                    <td data-label="Name">
                      <button type="button" className="link" onClick={() => open(parentOf(path))}>
                        ..
                      </button>
                    </td>
                    <td />
                    <td />
                    <td />
                    <td />
                  </tr>
                )}
                {entries.map((e) => (
                  <tr key={e.path}>
                    <td data-label="Name">
                      {e.type === 'dir' ? (
                        <button type="button" className="link" onClick={() => open(e.path)}>
                          {name ? e.path : baseName(e.path)}/
                        </button>
                      ) : (
                        <>
                          {name ? e.path : baseName(e.path)}
                          {e.target !== undefined && <span className="muted"> → {e.target}</span>}
                        </>
                      )}
                    </td>
                    <td data-label={e.type === 'dir' ? undefined : 'Size'}>{e.type === 'dir' ? '' : bytes(e.size)}</td>
                    <td data-label="Mode">
                      <code>{modeText(e)}</code>{' '}
                      <span className="muted small">
                        {e.uid}:{e.gid}
                      </span>
                    </td>
                    <td data-label="Modified">{when(e.mtime)}</td>
                    <td className="actions">
                      <button type="button" onClick={() => save(e.path)}>
                        Download
                      </button>
                    </td>
                  </tr>
                ))}
                {entries.length === 0 && (
                  <tr>
                    <td className="muted">{name ? 'No name matches.' : 'This folder is empty.'}</td>
                  </tr>
                )}
              </tbody>
            </table>
          )}
        </>
      )}
    </>
  );
}
