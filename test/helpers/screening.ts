/*
 * Small screening lists in the official layout of the Consolidated Screening List downloads (consolidated.csv,
 * consolidated.json), built by the tests themselves: names here are invented, never copied from the real list.
 */
import { CSL_COLUMNS } from '../../src/screening/csl.js'

export interface TestParty {
  id: string
  name: string
  source?: string
  altNames?: string[]
  /** address, city, state, postal_code, country */
  addresses?: Array<[string, string, string, string, string]>
  type?: string
  programs?: string[]
  website?: string
  startDate?: string
}

export const ENTITY_LIST = 'Entity List (EL) - Bureau of Industry and Security'
export const SDN_LIST = 'Specially Designated Nationals (SDN) - Treasury Department'
export const MEU_LIST = 'Military End User (MEU) List - Bureau of Industry and Security'

function quote (c: string): string {
  return /[",\n\r]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c
}

function cells (p: TestParty): Record<string, string> {
  return {
    _id: p.id,
    source: p.source ?? ENTITY_LIST,
    entity_number: p.id,
    type: p.type ?? 'Entity',
    programs: (p.programs ?? ['EAR']).join('; '),
    name: p.name,
    title: '',
    addresses: (p.addresses ?? []).map((a) => a.join(', ')).join('; '),
    federal_register_notice: '89 FR 12345',
    start_date: p.startDate ?? '2024-05-01',
    end_date: '',
    standard_order: '',
    license_requirement: 'For all items subject to the EAR.',
    license_policy: 'Presumption of denial.',
    call_sign: '', vessel_type: '', gross_tonnage: '', gross_registered_tonnage: '', vessel_flag: '', vessel_owner: '',
    remarks: '',
    source_list_url: 'https://example.invalid/list',
    alt_names: (p.altNames ?? []).join('; '),
    citizenships: '', dates_of_birth: '', nationalities: '', places_of_birth: '',
    source_information_url: 'https://example.invalid/info',
    ids: p.website === undefined ? '' : `Website, ${p.website}, `
  }
}

export function cslCsvText (parties: readonly TestParty[]): string {
  const cols = ['_id', ...CSL_COLUMNS]
  const lines = [cols.join(',')]
  for (const p of parties) {
    const c = cells(p)
    lines.push(cols.map((k) => quote(c[k] ?? '')).join(','))
  }
  return lines.join('\n') + '\n'
}

export function cslJsonText (parties: readonly TestParty[], lastUpdated = '2026-11-30T00:00:00Z'): string {
  const results = parties.map((p) => ({
    _id: p.id,
    source: p.source ?? ENTITY_LIST,
    entity_number: p.id,
    type: p.type ?? 'Entity',
    programs: p.programs ?? ['EAR'],
    name: p.name,
    title: null,
    addresses: (p.addresses ?? []).map(([address, city, state, postal, country]) => ({ address, city, state, postal_code: postal, country })),
    federal_register_notice: '89 FR 12345',
    start_date: p.startDate ?? '2024-05-01',
    end_date: null,
    standard_order: null,
    license_requirement: 'For all items subject to the EAR.',
    license_policy: 'Presumption of denial.',
    call_sign: null, vessel_type: null, gross_tonnage: null, gross_registered_tonnage: null, vessel_flag: null, vessel_owner: null,
    remarks: null,
    source_list_url: 'https://example.invalid/list',
    alt_names: p.altNames ?? [],
    citizenships: [], dates_of_birth: [], nationalities: [], places_of_birth: [],
    source_information_url: 'https://example.invalid/info',
    ids: p.website === undefined ? [] : [{ type: 'Website', number: p.website, country: null, issue_date: null, expiration_date: null }]
  }))
  return JSON.stringify({ sources_used: [{ source: ENTITY_LIST, source_last_updated: lastUpdated, last_imported: lastUpdated }], results }, null, 2)
}

/** The invented parties most tests screen against. */
export const PARTIES: readonly TestParty[] = [
  { id: '1001', name: 'Shenzhen Dragonfly Microelectronics Co., Ltd.', altNames: ['Dragonfly Micro', '深圳蜻蜓微电子有限公司'], addresses: [['Building 7, Nanshan', 'Shenzhen', 'Guangdong', '518000', 'CN']], website: 'www.dragonfly-micro.example' },
  { id: '1002', name: 'Obshchestvo s ogranichennoi otvetstvennostyu Zvezdolet', altNames: ['OOO Zvezdolet', 'ООО «Звездолёт»', 'Zvezdolet LLC'], addresses: [['ul. Lesnaya 5', 'Moscow', '', '125047', 'RU']], source: SDN_LIST, programs: ['RUSSIA-EO14024'] },
  { id: '1003', name: 'Kestrel Avionics Trading FZE', addresses: [['Jebel Ali Free Zone', 'Dubai', '', '', 'AE']], source: MEU_LIST },
  { id: '1004', name: 'Nordwind Präzisionstechnik GmbH', addresses: [['Hafenstraße 3', 'Hamburg', '', '20457', 'DE']] },
  { id: '1005', name: 'Aurora Photonics International Limited', altNames: ['Aurora Photonics HK'], addresses: [['Unit 5, Kowloon', 'Hong Kong', '', '', 'HK']] }
]
