import t from 'tap'
import { Readable } from 'node:stream'
import { parseForm, readForm } from '../../src/http/multipart.js'
import { FormFields } from '../../src/core/form-fields.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import { gatewayWithUpstream } from '../helpers/gateway.js'

const CT = 'multipart/form-data; boundary=XyZ'

function form (parts: Array<{ name: string, value: string, filename?: string }>, boundary = 'XyZ'): Buffer {
  let s = ''
  for (const p of parts) {
    s += `--${boundary}\r\ncontent-disposition: form-data; name="${p.name}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}\r\n`
    if (p.filename !== undefined) s += 'content-type: application/octet-stream\r\n'
    s += `\r\n${p.value}\r\n`
  }
  return Buffer.from(s + `--${boundary}--\r\n`)
}

function thrown (fn: () => unknown): { statusCode?: number, message: string } {
  try { fn() } catch (err) { return err as { statusCode?: number, message: string } }
  return { message: 'did not throw' }
}

t.test('parseForm: text fields, files skipped, ambiguity refused', async (t) => {
  const f = parseForm(CT, form([{ name: 'file', value: 'RIFF....--XyZ not a delimiter', filename: 'a.wav' }, { name: 'model', value: 'whisper-1' }, { name: 'stream', value: 'true' }]))
  t.equal(f.one('model'), 'whisper-1')
  t.equal(f.one('stream'), 'true')
  t.equal(f.one('file'), null, 'file parts are not fields')
  t.equal(parseForm('multipart/form-data; boundary="XyZ"', form([{ name: 'model', value: 'm' }])).one('model'), 'm', 'quoted boundary')
  t.equal(thrown(() => parseForm(CT, form([{ name: 'model', value: 'a' }, { name: 'model', value: 'b' }])).one('model')).statusCode, 400, 'duplicated field')
  const bad: Array<[string, Buffer]> = [
    ['multipart/form-data', form([{ name: 'model', value: 'm' }])],
    [CT, Buffer.from('--XyZ\r\ncontent-disposition: form-data; name="model"\r\n\r\nm')],
    [CT, Buffer.from('--XyZ\r\ncontent-disposition: form-data; name*=UTF-8\'\'model\r\n\r\nm\r\n--XyZ--')],
    [CT, Buffer.from('--XyZ\r\ncontent-type: text/plain\r\n\r\nm\r\n--XyZ--')],
    [CT, Buffer.from('nothing here')]
  ]
  for (const [ct, body] of bad) t.equal(thrown(() => parseForm(ct, body)).statusCode, 400, body.toString().slice(0, 40))
  const big = Readable.from([Buffer.alloc(600), Buffer.alloc(600)])
  const status = await readForm(big, CT, 1000).then(() => 0, (err: { statusCode?: number }) => err.statusCode)
  t.equal(status, 413, 'a body over the limit')
})

t.test('describeRequest on a form', async (t) => {
  const f = (parts: Array<{ name: string, value: string, filename?: string }>): FormFields => parseForm(CT, form(parts))
  const s = describeRequest('POST', '/v1/audio/transcriptions', f([{ name: 'file', value: 'x', filename: 'a.wav' }, { name: 'model', value: 'whisper-1' }, { name: 'stream', value: 'true' }]))
  t.same([s.endpoint, s.model, s.capabilities, s.stream], ['audio.transcriptions', 'whisper-1', ['audio', 'streaming'], true])
  t.equal(thrown(() => describeRequest('POST', '/v1/audio/transcriptions', f([{ name: 'file', value: 'x', filename: 'a' }]))).message, 'you must provide a model parameter')
  t.equal(thrown(() => describeRequest('POST', '/v1/audio/transcriptions', f([{ name: 'model', value: 'm' }, { name: 'stream', value: '1' }]))).statusCode, 400)
  t.equal(thrown(() => describeRequest('POST', '/v1/chat/completions', f([{ name: 'model', value: 'm' }]))).message, 'Send a JSON body (Content-Type: application/json)')
  t.equal(thrown(() => describeRequest('POST', '/v1/chat/completions', Readable.from(['{"model":"m"}']))).statusCode, 400, 'a non-JSON stream is not accepted')
})

t.test('multipart uploads through the gateway: decided on the form model, forwarded byte for byte', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"text":"hi"}') }, {
    models: { 'whisper-1': { backend: 'gpu', classification: 'EAR99' }, 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' } },
    locations: { tiers: { embargoed: ['CU'], tier1: ['US'] }, default: 'tier2', unknown: 'embargoed' },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'audio'] },
      tier2: { models: ['llama-*'], capabilities: ['chat'] },
      embargoed: { deny: true }
    }
  })
  const send = async (key: string, body: Buffer, ip = '8.8.8.8', url = '/v1/audio/transcriptions', ct = CT): Promise<number> =>
    (await gw.app.inject({ method: 'POST', url, remoteAddress: ip, headers: { authorization: `Bearer ${key}`, 'content-type': ct }, payload: body })).statusCode
  const ok = form([{ name: 'file', value: 'RIFFdata', filename: 'a.wav' }, { name: 'model', value: 'whisper-1' }])
  t.equal(await send('test-key-tier1', ok), 200)
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.body, ok.toString('utf8'), 'the backend got the same bytes')
  t.equal(up.requests[0]?.headers['content-type'], CT)
  t.equal(await send('test-key-tier2', ok), 403, 'audio not on this plan')
  t.equal(await send('test-key-tier1', ok, '152.206.0.1'), 451)
  t.equal(await send('test-key-tier1', form([{ name: 'file', value: 'x', filename: 'a' }, { name: 'model', value: 'nope' }])), 404)
  t.equal(await send('test-key-tier1', form([{ name: 'model', value: 'llama-3.1-8b' }, { name: 'model', value: 'whisper-1' }])), 400)
  t.equal(await send('test-key-tier1', form([{ name: 'model', value: 'llama-3.1-8b' }]), '8.8.8.8', '/v1/chat/completions'), 400, 'no multipart chat')
  t.equal(await send('test-key-tier1', Buffer.from('{"model":"llama-3.1-8b","messages":[]}'), '8.8.8.8', '/v1/chat/completions', 'text/plain'), 400, 'no JSON in disguise')
  t.equal(up.requests.length, 1, 'no refusal reached the backend')
})
