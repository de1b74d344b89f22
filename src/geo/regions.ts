/*
 * Named regions drawn as GeoJSON (RFC 7946: WGS 84 longitude/latitude), matched on a City database's point and
 * its accuracy radius. A region is read once (start; the file is part of geo.*, like the databases) and kept as
 * rings with a bounding box, so a lookup costs a box test for regions far away.
 */
import { readFile } from 'node:fs/promises'
import type { GeoPoint, RegionHit } from './types.js'

type Ring = Array<[number, number]>
/** outer ring first, then holes */
type Polygon = Ring[]

export interface Region {
  readonly name: string
  readonly polygons: readonly Polygon[]
  /** [minLon, minLat, maxLon, maxLat] */
  readonly bbox: readonly [number, number, number, number]
}

export class RegionFileError extends Error {}

const EARTH_KM = 6371.0088
const KM_PER_DEG = (Math.PI / 180) * EARTH_KM

type Json = Record<string, unknown>
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

function ring (v: unknown, where: string): Ring {
  if (!Array.isArray(v) || v.length < 4) throw new RegionFileError(`${where}: a ring needs at least 4 positions`)
  return v.map((p, i) => {
    if (!Array.isArray(p) || typeof p[0] !== 'number' || typeof p[1] !== 'number' || Math.abs(p[0]) > 180 || Math.abs(p[1]) > 90) {
      throw new RegionFileError(`${where}[${i}]: not a [longitude, latitude] position`)
    }
    return [p[0], p[1]]
  })
}

function polygonsOf (g: unknown, where: string, out: Polygon[]): void {
  if (!isObj(g)) throw new RegionFileError(`${where}: not a GeoJSON object`)
  if (g.type === 'FeatureCollection') {
    if (!Array.isArray(g.features)) throw new RegionFileError(`${where}.features: expected a list`)
    g.features.forEach((f, i) => { polygonsOf(f, `${where}.features[${i}]`, out) })
  } else if (g.type === 'Feature') {
    polygonsOf(g.geometry, `${where}.geometry`, out)
  } else if (g.type === 'GeometryCollection') {
    if (!Array.isArray(g.geometries)) throw new RegionFileError(`${where}.geometries: expected a list`)
    g.geometries.forEach((x, i) => { polygonsOf(x, `${where}.geometries[${i}]`, out) })
  } else if (g.type === 'Polygon') {
    if (!Array.isArray(g.coordinates) || g.coordinates.length === 0) throw new RegionFileError(`${where}.coordinates: expected rings`)
    out.push(g.coordinates.map((r, i) => ring(r, `${where}.coordinates[${i}]`)))
  } else if (g.type === 'MultiPolygon') {
    if (!Array.isArray(g.coordinates)) throw new RegionFileError(`${where}.coordinates: expected polygons`)
    g.coordinates.forEach((p, i) => {
      if (!Array.isArray(p) || p.length === 0) throw new RegionFileError(`${where}.coordinates[${i}]: expected rings`)
      out.push(p.map((r, j) => ring(r, `${where}.coordinates[${i}][${j}]`)))
    })
  } else {
    throw new RegionFileError(`${where}: type ${JSON.stringify(g.type)} has no area (Polygon, MultiPolygon, Feature, FeatureCollection)`)
  }
}

export function parseRegion (name: string, text: string): Region {
  let doc: unknown
  try { doc = JSON.parse(text) } catch (err) { throw new RegionFileError(`not JSON: ${(err as Error).message}`) }
  const polygons: Polygon[] = []
  polygonsOf(doc, '$', polygons)
  if (polygons.length === 0) throw new RegionFileError('no polygon in the file')
  let minLon = 180; let minLat = 90; let maxLon = -180; let maxLat = -90
  for (const p of polygons) {
    for (const [lon, lat] of p[0] ?? []) {
      minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon); minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat)
    }
  }
  return { name, polygons, bbox: [minLon, minLat, maxLon, maxLat] }
}

export async function loadRegion (name: string, path: string): Promise<Region> {
  let text: string
  try { text = await readFile(path, 'utf8') } catch (err) { throw new RegionFileError(`region "${name}": cannot read ${path} (${(err as Error).message})`) }
  try {
    return parseRegion(name, text)
  } catch (err) {
    throw new RegionFileError(`region "${name}" (${path}): ${(err as Error).message}`)
  }
}

/** Ray casting (even-odd) on lon/lat: exact enough for regions that do not straddle the antimeridian. */
function inRing (lon: number, lat: number, r: Ring): boolean {
  let inside = false
  for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
    const [xi, yi] = r[i] as [number, number]
    const [xj, yj] = r[j] as [number, number]
    if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside
  }
  return inside
}

function inPolygon (lon: number, lat: number, p: Polygon): boolean {
  if (p[0] === undefined || !inRing(lon, lat, p[0])) return false
  for (let h = 1; h < p.length; h++) if (inRing(lon, lat, p[h] as Ring)) return false
  return true
}

/**
 * Distance in km from the point to the nearest ring edge, on a local equirectangular projection around the
 * point (accuracy radii are tens to hundreds of km: the error is well under a percent at those scales).
 */
function edgeDistanceKm (lon: number, lat: number, p: Polygon): number {
  const kx = KM_PER_DEG * Math.cos((lat * Math.PI) / 180)
  let best = Number.POSITIVE_INFINITY
  for (const r of p) {
    for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
      const [x1, y1] = r[j] as [number, number]
      const [x2, y2] = r[i] as [number, number]
      const ax = (x1 - lon) * kx; const ay = (y1 - lat) * KM_PER_DEG
      const bx = (x2 - lon) * kx; const by = (y2 - lat) * KM_PER_DEG
      const dx = bx - ax; const dy = by - ay
      const len = dx * dx + dy * dy
      const t = len === 0 ? 0 : Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len))
      const d = Math.hypot(ax + t * dx, ay + t * dy)
      if (d < best) best = d
    }
  }
  return best
}

/** The regions the point is in, or whose edge its accuracy circle reaches. */
export function regionHits (regions: readonly Region[], pt: GeoPoint): RegionHit[] {
  const out: RegionHit[] = []
  const radius = pt.accuracyRadiusKm ?? 0
  const { latitude: lat, longitude: lon } = pt
  const padLat = radius / KM_PER_DEG
  const padLon = radius / Math.max(1e-6, KM_PER_DEG * Math.cos((lat * Math.PI) / 180))
  for (const reg of regions) {
    const [x0, y0, x1, y1] = reg.bbox
    if (lon < x0 - padLon || lon > x1 + padLon || lat < y0 - padLat || lat > y1 + padLat) continue
    if (reg.polygons.some((p) => inPolygon(lon, lat, p))) { out.push({ name: reg.name, inside: true, distanceKm: 0 }); continue }
    if (radius <= 0) continue
    const d = Math.min(...reg.polygons.map((p) => edgeDistanceKm(lon, lat, p)))
    if (d <= radius) out.push({ name: reg.name, inside: false, distanceKm: Math.round(d * 10) / 10 })
  }
  return out
}
