import { useState } from 'preact/hooks';
import { get, post, qs, type Operator } from '../api.js';
import { Loading, NeedsPermission, Problem, ProfileSelect, filledFields, time, useLoad } from '../ui.js';

interface Manifest {
  digest: string;
  supplier: string;
  stage: string;
  profile: string;
  domain: string | null;
  owner: string | null;
  signer: string;
  importedAt: string;
  importedBy: string;
  devices: number;
}
interface Supplier {
  supplier: string;
  fingerprint: string;
  subject: string;
  notAfter: string;
}
interface Imported {
  manifest: Manifest;
  registered: string[];
  moved: string[];
}

/** The file's bytes as base64, in chunks (a manifest may be megabytes; one spread call would overflow the stack). */
async function fileBase64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function ImportManifest({ op, onDone }: { op: Operator; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<Imported>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const file = f.get('file');
    setError(undefined);
    setResult(undefined);
    try {
      if (!(file instanceof File) || file.size === 0) throw new Error('Choose the signed manifest file (.cms).');
      const body: Record<string, unknown> = { cms: await fileBase64(file), profile: String(f.get('profile')), ...filledFields(f, ['stage', 'domain', 'owner']) };
      if (f.get('requireApproval')) body.requireApproval = true;
      setResult(await post<Imported>('/api/v1/manifests', body));
      form.reset();
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="action" aria-labelledby="import-h">
      <h2 id="import-h">Import a signed manifest</h2>
      <NeedsPermission op={op} permission="device:register" />
      <p>
        A supplier's signed list of the devices it hands over (<code>fleetpki manifest sign</code> or <code>openssl cms -sign -nodetach -binary</code>). All or nothing: one device that cannot enter the
        stage and nothing is imported.
      </p>
      <form onSubmit={submit}>
        <label>
          Signed manifest
          <input name="file" type="file" accept=".cms,.p7m,.der,.pem,application/cms,application/pkcs7-mime" required />
        </label>
        <ProfileSelect label="Profile in this stage" />
        <label>
          Expected stage
          <input name="stage" pattern="[a-z0-9][a-z0-9\-]{0,62}" />
        </label>
        <label>
          Domain
          <input name="domain" />
        </label>
        <label>
          Owner
          <input name="owner" />
        </label>
        <label class="check">
          <input type="checkbox" name="requireApproval" /> First certificates wait for approval
        </label>
        <button type="submit">Import</button>
      </form>
      <Problem error={error} />
      {result && (
        <p class="success" role="status">
          Imported the manifest of {result.manifest.supplier} for stage {result.manifest.stage}: {result.registered.length} registered, {result.moved.length} moved into the stage.
        </p>
      )}
    </section>
  );
}

export function ManifestsPage({ op }: { op: Operator }) {
  const manifests = useLoad(() => get<Manifest[]>(`/api/v1/manifests${qs({ limit: 200 })}`), []);
  const suppliers = useLoad(() => get<Supplier[]>('/api/v1/suppliers'), []);
  return (
    <section aria-labelledby="manifests-h">
      <h1 id="manifests-h">Supply chain</h1>
      <h2>Imported manifests</h2>
      <Loading state={manifests}>
        {(list) =>
          list.length === 0 ? (
            <p>No manifest imported yet.</p>
          ) : (
            <table id="manifests">
              <thead>
                <tr>
                  <th scope="col">Imported</th>
                  <th scope="col">Supplier</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Profile</th>
                  <th scope="col">Devices</th>
                  <th scope="col">Signer</th>
                  <th scope="col">By</th>
                  <th scope="col">Digest</th>
                </tr>
              </thead>
              <tbody>
                {list.map((m) => (
                  <tr key={m.digest}>
                    <td>{time(m.importedAt)}</td>
                    <td>{m.supplier}</td>
                    <td>{m.stage}</td>
                    <td>{m.profile}</td>
                    <td>{m.devices}</td>
                    <td>{m.signer}</td>
                    <td>{m.importedBy}</td>
                    <td class="mono small">{m.digest.slice(0, 16)}…</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      <ImportManifest
        op={op}
        onDone={() => {
          manifests.reload();
        }}
      />
      <h2>Trusted suppliers</h2>
      <Loading state={suppliers}>
        {(list) =>
          list.length === 0 ? (
            <p>
              No supplier is trusted: <code>fleetpki supplier add NAME --ca FILE</code>.
            </p>
          ) : (
            <table id="suppliers">
              <thead>
                <tr>
                  <th scope="col">Supplier</th>
                  <th scope="col">CA</th>
                  <th scope="col">Valid until</th>
                  <th scope="col">SHA-256</th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.fingerprint}>
                    <td>{s.supplier}</td>
                    <td>{s.subject}</td>
                    <td>{s.notAfter.slice(0, 10)}</td>
                    <td class="mono small">{s.fingerprint.slice(0, 16)}…</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
    </section>
  );
}
